/**
 * The playground page: starts the database worker, shows its progress and
 * the panels. Everything the page shows comes from SQL it also shows.
 */
import * as Comlink from 'comlink'
import type { DbApi, Progress } from './api.js'
import { PANELS, type Panel } from './panels.js'

const status = document.getElementById('status')!
const tabs = document.getElementById('tabs')!
const panels = document.getElementById('panels')!

const worker = new Worker(new URL('./db.worker.ts', import.meta.url), { type: 'module' })
const db = Comlink.wrap<DbApi>(worker)
worker.addEventListener('error', (e) => fatal(new Error(e.message || 'the database worker failed')))

function isolationBanner(): void {
  if (globalThis.crossOriginIsolated) return
  const banner = document.getElementById('isolation')!
  banner.hidden = false
  banner.textContent =
    'This page is not cross-origin isolated (no COOP/COEP headers), so SharedArrayBuffer is ' +
    'unavailable: the knowledge queries work, the compute backends that need synchronous ' +
    'worker calls do not. Serve it with Cross-Origin-Opener-Policy: same-origin and ' +
    'Cross-Origin-Embedder-Policy: require-corp.'
}

function showProgress(p: Progress): void {
  status.className = 'status'
  const mb = (n: number) => (n / 1e6).toFixed(1)
  status.innerHTML = ''
  status.append(p.total > 1 ? `${p.stage}: ${mb(p.done)} of ${mb(p.total)} MB` : `${p.stage}…`)
  if (p.total > 1) {
    const bar = document.createElement('progress')
    bar.max = p.total
    bar.value = p.done
    status.append(bar)
  }
}

function mountPanels(): void {
  const buttons = new Map<string, HTMLButtonElement>()
  const sections = new Map<string, HTMLElement>()
  const select = (id: string) => {
    for (const [k, b] of buttons) b.classList.toggle('active', k === id)
    for (const [k, s] of sections) s.classList.toggle('active', k === id)
    history.replaceState(null, '', `#${id}`)
  }
  for (const panel of PANELS as Panel[]) {
    const button = document.createElement('button')
    button.textContent = panel.title
    button.dataset.panel = panel.id
    button.onclick = () => select(panel.id)
    tabs.append(button)
    buttons.set(panel.id, button)
    const section = panel.mount(db)
    section.id = `panel-${panel.id}`
    section.classList.add('panel')
    panels.append(section)
    sections.set(panel.id, section)
  }
  const wanted = location.hash.slice(1)
  select(sections.has(wanted) ? wanted : PANELS[0]!.id)
}

async function start(): Promise<void> {
  isolationBanner()
  mountPanels()
  const params = new URLSearchParams(location.search)
  const memory = params.has('memory')
  const open = await db.open(memory, new URL('.', location.href).href)
  await db.loadDemo(Comlink.proxy(showProgress))
  // ?compute=webgpu | onnx: gate passes and forward steps in a compute worker
  // (docs/webgpu.md, docs/compute.md)
  const backend = params.get('compute')
  const served =
    backend === 'webgpu' || backend === 'onnx' ? await db.useCompute(backend) : undefined
  status.className = 'status ready'
  status.textContent =
    `${open.postgres.split(' on ')[0]} · pg_infer ${open.pgInfer} · pgvector ${open.vector} · ` +
    'model "countries" ' +
    (open.persisted ? 'loaded from this tab’s database' : 'registered') +
    (memory ? ' (in memory)' : ' (IndexedDB)') +
    (served ? ` · compute: ${backend} on ${served}` : '')
  document.body.dataset.ready = 'true'
  for (const b of document.querySelectorAll<HTMLButtonElement>('button.run')) b.disabled = false
}

function fatal(e: unknown): void {
  if (document.body.dataset.ready) return
  status.className = 'status error'
  status.textContent = `Could not start: ${e instanceof Error ? e.message : String(e)}`
  document.body.dataset.ready = 'error'
  console.error(e)
}

start().catch(fatal)
