/**
 * The fuzzer's child process: one PGlite with pg_infer, reused for every
 * case it is given. The parent (runner.ts) bounds each case in time and
 * restarts this process after a hang or a crash.
 *
 * Protocol (IPC, advanced serialization):
 *   parent -> { type: 'init', seed, bases }       child -> { type: 'ready' } | { type: 'fatal', message }
 *   parent -> { type: 'case', index }             child -> { type: 'done', result: WorkerResult }
 */
import { PGlite } from '@electric-sql/pglite'
import { pgInfer } from 'pglite-infer'
import type { Base } from './bases.js'
import { CANARY_ABS, canaryDir, makeCase, type FuzzCase } from './mutate.js'

export interface SqlErr {
  code: string
  message: string
}
export type StepResult = { rows: string } | { error: SqlErr }
export type Battery = Record<string, StepResult>

export interface WorkerResult {
  index: number
  /** What loaded the mutated vindex: createModel, or CREATE INDEX in mode index. */
  load: { ok: true } | { ok: false; error: SqlErr }
  /** In mode index: what createModel (which also wrote the files) said. */
  writeLoad?: { ok: true } | { ok: false; error: SqlErr }
  battery?: Battery
  /** Steps whose answer differs from the unmutated vindex's, without an error. */
  differs: string[]
  /** Steps that raised an error where the unmutated vindex answered. */
  errored: string[]
  /** Errors with no SQLSTATE, 38000/XX000, or JavaScript internals in the text. */
  unclean: string[]
  /** What was wrong with the session after the case (empty: healthy). */
  unhealthy: string[]
  /** A JavaScript exception that is not a SQL error (a WebAssembly abort): restart. */
  aborted?: string
  ms: number
}

type Fs = {
  mkdirTree(p: string): void
  writeFile(p: string, d: Uint8Array): void
  symlink(target: string, p: string): void
  readdir(p: string): string[]
  unlink(p: string): void
  rmdir(p: string): void
  lstat(p: string): { mode: number }
  isDir(mode: number): boolean
}

const PROMPTS = ['The capital of France is', 'Once upon a time']
const DOCS = [
  'The capital of France is Paris',
  'Berlin is the capital of Germany',
  'Once upon a time there was a cat',
  'The dog ran in the park',
  'Tokyo is in Japan',
  'A story about a little girl',
  'Rome and Madrid',
  'The sun is hot',
  '',
  'France Germany Japan',
]

let db: PGlite & { infer: import('pglite-infer').InferNamespace }
let fs: Fs
let root = '' // <PGDATA>/<infer.data_directory>
let bases: Base[] = []
let seed = 0
const baselines = new Map<string, Battery>()
const health = new Map<string, string>()

const JS_INTERNALS =
  /TypeError|RangeError|ReferenceError|SyntaxError|is not a function|Cannot read prop|Cannot set prop|is not iterable|is not defined|\[object |Maximum call stack|RuntimeError|unreachable|Aborted\(|out of memory|\bat [\w.<>]+ \(|(expected|found) undefined\b/

export function isUnclean(e: SqlErr): boolean {
  return e.code === '' || e.code === '38000' || e.code === 'XX000' || JS_INTERNALS.test(e.message)
}

class Abort extends Error {}

/** A SQL error as { code, message }; anything else (a wasm abort) is rethrown as Abort. */
function sqlErr(e: unknown): SqlErr {
  const err = e as { code?: unknown; message?: unknown; name?: string }
  if (typeof err?.code === 'string' && err.code.length === 5)
    return { code: err.code, message: String(err.message) }
  throw new Abort(`${err?.name ?? 'Error'}: ${String(err?.message ?? e)}`)
}

/** Tells the parent what runs now, so a hang report names the statement. */
function progress(what: string): void {
  process.send?.({ type: 'step', what })
}

async function step(sql: string, params: unknown[] = []): Promise<StepResult> {
  progress(params.length ? `${sql} [${params.map((p) => JSON.stringify(p)).join(', ')}]` : sql)
  try {
    const { rows } = await db.query(sql, params)
    return { rows: JSON.stringify(rows) }
  } catch (e) {
    return { error: sqlErr(e) }
  }
}

async function battery(model: string, level: string): Promise<Battery> {
  const b: Battery = {}
  for (const [i, p] of PROMPTS.entries())
    b[`walk${i}`] = await step('select layer, feature, activation, concept from walk($1, 5, $2)', [
      p,
      model,
    ])
  b.describe = await step('select * from describe($1, $2)', ['France', model])
  b.similar0 = await step('select similar_to($1, $2, $3) as s', ['France', 'Germany', model])
  b.similar1 = await step('select similar_to($1, $2, $3) as s', ['cat', 'dog', model])
  if (level !== 'browse')
    for (const [i, p] of PROMPTS.entries())
      b[`infer${i}`] = await step('select token, probability, rank from infer($1, 5, $2)', [
        p,
        model,
      ])
  // the column index: ORDER BY title <~> q served by an infer index built with this model
  const made = await step(
    `create index fuzz_docs_idx on fuzz_docs using infer (title) with (model = '${model}')`,
  )
  if ('error' in made) b.index = made
  else {
    try {
      progress('set infer.default_model')
      await db.exec(`set infer.default_model = '${model}'; set enable_seqscan = off`)
      b.index = await step(
        "select id from fuzz_docs order by title <~> 'capital of France' limit 5",
      )
    } finally {
      await db.exec(
        'drop index if exists fuzz_docs_idx; reset infer.default_model; reset enable_seqscan',
      )
    }
  }
  return b
}

function rmTree(path: string): void {
  let st: { mode: number }
  try {
    st = fs.lstat(path)
  } catch {
    return
  }
  if (fs.isDir(st.mode)) {
    for (const n of fs.readdir(path)) if (n !== '.' && n !== '..') rmTree(`${path}/${n}`)
    fs.rmdir(path)
  } else fs.unlink(path)
}

async function loaded(): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    'select name from infer_loaded_models() order by name',
  )
  return rows.map((r) => r.name)
}

async function init(s: number, bs: Base[]): Promise<void> {
  seed = s
  bases = bs
  db = (await PGlite.create({ extensions: { infer: pgInfer } })) as typeof db
  await db.exec('CREATE EXTENSION pg_infer')
  fs = (db as unknown as { mod: { FS: Fs } }).mod.FS
  const { rows } = await db.query<{ pgdata: string; dir: string }>(
    "select current_setting('data_directory') as pgdata, current_setting('infer.data_directory') as dir",
  )
  root = `${rows[0]!.pgdata}/${rows[0]!.dir}`
  await db.exec('create table fuzz_docs (id int primary key, title text)')
  await db.query(
    'insert into fuzz_docs select i, t from unnest($1::text[]) with ordinality as u(t, i)',
    [DOCS],
  )
  for (const b of bases) {
    // the canaries: same bytes as the base, outside any case's directory
    fs.mkdirTree(`${root}/${canaryDir(b.name)}`)
    for (const [n, d] of b.files) fs.writeFile(`${root}/${canaryDir(b.name)}/${n}`, d)
    const name = `base_${b.name}`
    await db.infer.createModel(name, b.files, { level: b.level })
    baselines.set(b.name, await battery(name, b.level))
    health.set(
      b.name,
      JSON.stringify(await step('select * from walk($1, 5, $2)', [PROMPTS[0], name])),
    )
  }
}

async function createModel(
  name: string,
  k: FuzzCase,
): Promise<{ ok: true } | { ok: false; error: SqlErr }> {
  const dir = `${root}/${name}.vindex`
  fs.mkdirTree(dir)
  for (const [n, target] of k.symlinks) fs.symlink(target, `${dir}/${n}`)
  for (const n of k.dirs) fs.mkdirTree(`${dir}/${n}`)
  const files = new Map(k.files)
  const ix = files.get('index.json')
  if (ix) {
    const s = new TextDecoder().decode(ix)
    if (s.includes(CANARY_ABS))
      files.set(
        'index.json',
        new TextEncoder().encode(s.split(CANARY_ABS).join(`${root}/${canaryDir(k.base)}`)),
      )
  }
  progress(`db.infer.createModel(${name}, level ${k.level})`)
  try {
    await db.infer.createModel(name, files, { level: k.level })
    return { ok: true }
  } catch (e) {
    return { ok: false, error: sqlErr(e) }
  }
}

async function runCase(index: number): Promise<WorkerResult> {
  const t0 = performance.now()
  const k = makeCase(seed, index, bases)
  const r: WorkerResult = {
    index,
    load: { ok: true },
    differs: [],
    errored: [],
    unclean: [],
    unhealthy: [],
    ms: 0,
  }
  const names = [`c${index}`, `w${index}`, `m${index}`]
  try {
    let model: string
    if (k.mode === 'files') {
      model = `c${index}`
      r.load = await createModel(model, k)
    } else {
      r.writeLoad = await createModel(`w${index}`, k)
      if (r.writeLoad.ok) await db.query('select infer_drop_model($1)', [`w${index}`])
      model = `m${index}`
      progress(`create index ${model} (source w${index}.vindex)`)
      try {
        await db.exec(
          `create index ${model} on infer._models using infer (name) with (source = 'w${index}.vindex', level = '${k.level}')`,
        )
      } catch (e) {
        r.load = { ok: false, error: sqlErr(e) }
      }
    }
    for (const l of [r.load, r.writeLoad])
      if (l && !l.ok && isUnclean(l.error))
        r.unclean.push(`load: ${l.error.code} ${l.error.message}`)
    if (r.load.ok) {
      r.battery = await battery(model, k.level)
      const want = baselines.get(k.base)!
      for (const [s, got] of Object.entries(r.battery)) {
        const w = want[s]
        if ('error' in got) {
          if (isUnclean(got.error)) r.unclean.push(`${s}: ${got.error.code} ${got.error.message}`)
          if (!w || !('error' in w)) r.errored.push(`${s}: ${got.error.code} ${got.error.message}`)
        } else if (JSON.stringify(got) !== JSON.stringify(w)) r.differs.push(s)
      }
    }
    // clean up, then check the session
    progress('clean-up: infer_drop_model')
    for (const n of names) {
      const { rows } = await db.query('select 1 from infer.models where name = $1', [n])
      if (rows.length) {
        try {
          await db.query('select infer_drop_model($1)', [n])
        } catch (e) {
          r.unhealthy.push(`infer_drop_model(${n}): ${sqlErr(e).code} ${sqlErr(e).message}`)
        }
      }
      rmTree(`${root}/${n}.vindex`)
    }
    const one = await step('select 1 as ok')
    if (!('rows' in one) || one.rows !== '[{"ok":1}]')
      r.unhealthy.push(`select 1: ${JSON.stringify(one)}`)
    const h = JSON.stringify(
      await step('select * from walk($1, 5, $2)', [PROMPTS[0], `base_${k.base}`]),
    )
    if (h !== health.get(k.base))
      r.unhealthy.push(`baseline walk on base_${k.base} changed: ${h.slice(0, 200)}`)
    const want = bases.map((b) => `base_${b.name}`).sort()
    const now = await loaded()
    if (JSON.stringify(now) !== JSON.stringify(want))
      r.unhealthy.push(
        `loaded models after the drop: ${now.filter((n) => !want.includes(n)).join(', ') || '(bases missing)'}`,
      )
  } catch (e) {
    if (e instanceof Abort) r.aborted = e.message
    else r.aborted = `host exception: ${(e as Error)?.stack ?? String(e)}`
  }
  r.ms = performance.now() - t0
  return r
}

process.on('message', (msg: { type: string; seed?: number; bases?: Base[]; index?: number }) => {
  void (async () => {
    try {
      if (msg.type === 'init') {
        await init(msg.seed!, msg.bases!)
        process.send!({ type: 'ready' })
      } else if (msg.type === 'case') {
        const result = await runCase(msg.index!)
        process.send!({ type: 'done', result })
      } else if (msg.type === 'exit') {
        await db?.close().catch(() => {})
        process.exit(0)
      }
    } catch (e) {
      process.send!({ type: 'fatal', message: (e as Error)?.stack ?? String(e) })
    }
  })()
})
