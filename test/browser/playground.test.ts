// The playground end to end in real Chromium (Debian's chromium package,
// driven by playwright-core; nothing downloads a browser): its production
// build served with COOP/COEP, the demo model loaded in the page's worker,
// every panel run and its rendered rows compared with the same queries run
// in Node, a reload that finds the model persisted in IndexedDB, and a
// screenshot of each panel (test/.output/playground/).
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { pgInfer } from 'pglite-infer'
import { vector } from 'pglite-infer/vector'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { repoPath } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'
import { serveStatic, type StaticServer } from './static-server.js'

const SHOTS = repoPath('test/.output/playground')
const DIST = repoPath('playground/dist')

let server: StaticServer
/** the same site under a Content-Security-Policy without 'unsafe-eval' */
let strict: StaticServer
const CSP = "script-src 'self' 'wasm-unsafe-eval'"
let browser: Browser
let node: Awaited<ReturnType<typeof openNodeTwin>>

/** The page's cell formatting (playground/src/panels.ts fmt). */
function fmt(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4)
  if (v instanceof Date) return v.toISOString()
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

/** The same database the page's worker builds (db.worker.ts loadDemo), in Node. */
async function openNodeTwin() {
  const db = await PGlite.create({ extensions: { infer: pgInfer, pg_trgm, vector } })
  await db.exec(`create extension pg_infer; create extension pg_trgm;
                 create extension vector; create extension pg_infer_vector;`)
  const tar = readFileSync(repoPath('playground/public/models/countries.vindex.tar.gz'))
  await db.infer.createModel('countries', new Uint8Array(tar), { level: 'inference' })
  await db.exec("set infer.default_model = 'countries'")
  const facts = JSON.parse(readFileSync(repoPath('playground/public/data/facts.json'), 'utf8')) as {
    relation: string
    template: string
  }[]
  const sentences = JSON.parse(
    readFileSync(repoPath('playground/public/data/sentences.json'), 'utf8'),
  ) as string[]
  await db.exec(`create table facts (subject text, relation text, object text, template text);
                 create table sentences (id int primary key, body text not null, embed vector(256));`)
  await db.query(
    `insert into facts select * from jsonb_to_recordset($1::jsonb)
       as f(subject text, relation text, object text, template text)`,
    [JSON.stringify(facts)],
  )
  await db.query(
    'insert into sentences select ord, body from unnest($1::text[]) with ordinality as t(body, ord)',
    [sentences],
  )
  for (const f of facts.filter((x, i, a) => a.findIndex((y) => y.relation === x.relation) === i))
    await db.query("select infer_add_relation('countries', $1, $2)", [f.relation, f.template])
  await db.exec(`update sentences set embed = infer_embed(body);
                 create index sentences_body on sentences using infer (body) with (model = 'countries');`)
  return db
}

async function nodeCells(sql: string, params: unknown[] = []): Promise<string[][]> {
  const r = await node.query<Record<string, unknown>>(sql, params)
  return r.rows.map((row) => r.fields.map((f) => fmt(row[f.name])))
}

async function run(
  page: Page,
  panel: string,
  fill: Record<string, string> = {},
): Promise<string[][]> {
  await page.click(`nav button[data-panel="${panel}"]`)
  const section = page.locator(`#panel-${panel}`)
  for (const [name, value] of Object.entries(fill)) {
    const field = section.locator(`[name="${name}"]`)
    if ((await field.evaluate((e) => e.tagName)) === 'SELECT') await field.selectOption(value)
    else await field.fill(value)
  }
  await section.locator('button.run').click()
  await section.locator('.out[data-state="done"], .out[data-state="error"]').waitFor({
    timeout: 180_000,
  })
  const state = await section.locator('.out').getAttribute('data-state')
  if (state !== 'done') throw new Error(await section.locator('.out').innerText())
  await page.screenshot({ path: `${SHOTS}/${panel}.png`, fullPage: true })
  return await section
    .locator('table.grid tbody tr')
    .evaluateAll((trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')),
    )
}

beforeAll(async () => {
  // Debian's chromium, installed on first use where we may (chromium.sh)
  const chromiumPath = execFileSync('bash', [repoPath('test/browser/chromium.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim()
  mkdirSync(SHOTS, { recursive: true })
  // the production build, as `npm run playground:build` makes it
  execFileSync('node', [repoPath('playground/scripts/prepare.mjs')], { stdio: 'inherit' })
  execFileSync('npx', ['vite', 'build', 'playground', '--logLevel', 'warn'], {
    cwd: repoPath(''),
    stdio: 'inherit',
  })
  server = await serveStatic(DIST, {}, { '/vindex/': await fixtureVindex('f16', 'inference') })
  strict = await serveStatic(DIST, { 'Content-Security-Policy': CSP })
  // WebGPU in headless Chromium: SwiftShader, a CPU emulation (correct, not fast)
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--enable-unsafe-webgpu'],
  })
  node = await openNodeTwin()
}, 300_000)

afterAll(async () => {
  await browser?.close()
  await server?.close()
  await strict?.close()
  await node?.close()
})

describe('the playground in Chromium', () => {
  it('loads the demo model in a worker, runs every panel like Node, and keeps the model after a reload', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const errors: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text())
    })
    page.on('pageerror', (e) => errors.push(e.message))

    await page.goto(server.url)
    await page.waitForSelector('body[data-ready]', { timeout: 240_000 })
    expect(await page.getAttribute('body', 'data-ready')).toBe('true')
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true)
    expect(await page.isHidden('#isolation')).toBe(true)
    const status = await page.innerText('#status')
    expect(status).toMatch(
      /^PostgreSQL 18\.\d+ \(PGlite [\d.]+\) · pg_infer 0\.1\.0 · pgvector 0\.8\.0 · model "countries" registered \(IndexedDB\)$/,
    )

    expect(await run(page, 'describe', { entity: 'Japan' })).toEqual(
      await nodeCells('select * from describe($1)', ['Japan']),
    )
    expect(await run(page, 'walk', { prompt: 'The capital of France is' })).toEqual(
      await nodeCells('select * from walk($1, 8, per_layer => true)', ['The capital of France is']),
    )
    const inferred = await run(page, 'infer', { prompt: 'The capital of Japan is' })
    expect(inferred).toEqual(
      await nodeCells('select * from infer($1, 10)', ['The capital of Japan is']),
    )
    expect(inferred[0]![0]).toBe(' Tokyo')
    expect(await run(page, 'search', { query: 'capital of France' })).toEqual(
      await nodeCells(
        'select id, body, round((body <~> $1)::numeric, 4) as distance from sentences order by body <~> $1 limit 10',
        ['capital of France'],
      ),
    )
    expect(await page.locator('#panel-search pre.plan').innerText()).toContain(
      'Index Scan using sentences_body on sentences',
    )
    const templates = await run(page, 'templates', {
      relation: 'capital_city',
      template: 'The capital city of {} is',
    })
    await node.query(
      "select infer_add_relation('countries', 'capital_city', 'The capital city of {} is')",
    )
    expect(templates).toEqual(
      await nodeCells('select relation, template from infer.relation_templates order by relation'),
    )
    expect(await run(page, 'labels')).toEqual(
      await nodeCells("select * from infer_label_relations('countries', 'facts')"),
    )
    // a model from a vindex served over http: downloaded by the page's
    // worker with fetch and stored in its database, as Node does it
    const models = await run(page, 'models', { name: 'web', url: 'vindex/', level: 'inference' })
    await node.infer.createModel('web', `${server.url}vindex/`, {
      level: 'inference',
      store: 'database',
    })
    expect(models).toEqual(
      await nodeCells(
        'select model_name, source, extract_level, num_layers, hidden_size, dtype, bytes, loaded from infer_models()',
      ),
    )
    expect(
      await run(page, 'sql', { sql: "select * from infer('The capital of Spain is', 5, 'web')" }),
    ).toEqual(await nodeCells("select * from infer('The capital of Spain is', 5, 'web')"))
    expect(
      await run(page, 'sql', {
        sql: "select body, embed <=> infer_embed('capital of Japan') as d from sentences order by d, body limit 5",
      }),
    ).toEqual(
      await nodeCells(
        "select body, embed <=> infer_embed('capital of Japan') as d from sentences order by d, body limit 5",
      ),
    )

    // a reload opens the same IndexedDB database: the model is there
    await page.reload()
    await page.waitForSelector('body[data-ready]', { timeout: 240_000 })
    expect(await page.innerText('#status')).toContain('loaded from this tab’s database')
    expect(await run(page, 'infer', { prompt: 'The capital of France is' })).toEqual(
      await nodeCells('select * from infer($1, 10)', ['The capital of France is']),
    )
    expect(errors).toEqual([])
    await context.close()
  }, 300_000) // a browser, a worker, the model and eight panels: slow on a loaded 2-core machine

  it('PGliteWorker: pg_infer in its worker, db.infer.createModel(bytes) from the page, no warnings', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    const messages: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') messages.push(`${m.type()}: ${m.text()}`)
    })
    page.on('pageerror', (e) => messages.push(e.message))
    await page.goto(`${server.url}worker-client.html`)
    await page.waitForSelector('body[data-ready]', { timeout: 240_000 })
    expect(await page.getAttribute('body', 'data-ready'), await page.innerText('#out')).toBe('true')
    const rows = JSON.parse((await page.getAttribute('body', 'data-result'))!) as unknown[]
    expect(rows).toEqual(
      (await node.query("select * from infer('The capital of France is', 3, 'countries')")).rows,
    )
    expect(messages).toEqual([])
    await context.close()
  })

  it(`loads pg_infer and runs infer() under Content-Security-Policy: ${CSP}`, async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    const errors: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text())
    })
    page.on('pageerror', (e) => errors.push(e.message))
    const response = await page.goto(`${strict.url}?memory`)
    expect(response!.headers()['content-security-policy']).toBe(CSP)
    await page.waitForSelector('body[data-ready]', { timeout: 240_000 })
    expect(await page.getAttribute('body', 'data-ready')).toBe('true')
    expect(await run(page, 'infer', { prompt: 'The capital of Japan is' })).toEqual(
      await nodeCells('select * from infer($1, 10)', ['The capital of Japan is']),
    )
    expect(errors).toEqual([])
    await context.close()
  })

  // webgpu: navigator.gpu (SwiftShader here); onnx: onnxruntime-web's wasm EP
  it.each(['webgpu', 'onnx'])(
    '?compute=%s: a compute worker beside the database serves walk() and infer() like wasm',
    async (backend) => {
      const context = await browser.newContext()
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(e.message))
      await page.goto(`${server.url}?memory&compute=${backend}`)
      await page.waitForSelector('body[data-ready]', { timeout: 240_000 })
      expect(await page.getAttribute('body', 'data-ready')).toBe('true')
      expect(await page.innerText('#status')).toMatch(new RegExp(` · compute: ${backend} on \\S`))
      expect(
        await run(page, 'sql', { sql: "select current_setting('infer.compute') as compute" }),
      ).toEqual([[backend]])
      // rows formatted to 4 significant digits: names and order exactly, numbers within 1e-3
      const same = (gpu: string[][], cpu: string[][], numeric: number[]) => {
        expect(gpu.map((r) => r.filter((_, i) => !numeric.includes(i)))).toEqual(
          cpu.map((r) => r.filter((_, i) => !numeric.includes(i))),
        )
        gpu.forEach((r, j) =>
          numeric.forEach((i) => {
            const [a, b] = [Number(r[i]), Number(cpu[j]![i])]
            expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-3 * Math.max(Math.abs(b), 1e-3))
          }),
        )
      }
      same(
        await run(page, 'infer', { prompt: 'The capital of Japan is' }),
        await nodeCells('select * from infer($1, 10)', ['The capital of Japan is']),
        [1],
      )
      same(
        await run(page, 'walk', { prompt: 'The capital of France is' }),
        await nodeCells('select * from walk($1, 8, per_layer => true)', [
          'The capital of France is',
        ]),
        [2],
      )
      // the compute worker holds the forward weights and the gate rows
      const held = await run(page, 'sql', {
        sql: "select compute_bytes > 0 as held from infer_models() where model_name = 'countries'",
      })
      expect(held).toEqual([['true']])
      expect(errors).toEqual([])
      await context.close()
    },
  )

  it('the policy is enforced: without wasm-unsafe-eval the page cannot start', async () => {
    const none = await serveStatic(DIST, { 'Content-Security-Policy': "script-src 'self'" })
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${none.url}?memory`)
    await page.waitForSelector('body[data-ready]', { timeout: 240_000 })
    expect(await page.getAttribute('body', 'data-ready')).toBe('error')
    expect(await page.innerText('#status')).toMatch(/WebAssembly|wasm|Content Security Policy/i)
    await context.close()
    await none.close()
  })
})
