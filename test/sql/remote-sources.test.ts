import { readFileSync, readdirSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { pgInfer } from '../helpers/db.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// The compiled module, so that its worker (dist/host/remote-worker.js) is beside it.
import { fetchRemoteSync } from '../../packages/pglite-infer/dist/host/remote.js'
import { openDb, sqlError } from '../helpers/db.js'
import { startHubServer, type HubServer } from '../helpers/hub-server.js'
import { QWEN_FIXTURE, repoPath } from '../helpers/paths.js'
import { makeTinyCheckpoint } from '../vindex/tiny-checkpoints.js'

const TMP = repoPath(`test/.tmp/remote-sources-${process.pid}`)
const VINDEX = join(TMP, 'qwen.vindex')
const VINDEX_INF = join(TMP, 'qwen-inference.vindex')
const SAVED_ENV = {
  HF_ENDPOINT: process.env.HF_ENDPOINT,
  PGLITE_INFER_CACHE: process.env.PGLITE_INFER_CACHE,
  PGLITE_INFER_DOWNLOAD_TIMEOUT: process.env.PGLITE_INFER_DOWNLOAD_TIMEOUT,
  HF_TOKEN: process.env.HF_TOKEN,
}

let hub: HubServer
let db: PGlite
let caches = 0
/** The cache that holds hf://org/knowledge-qwen2-6l once the first test ran. */
let qwenCache = ''

/** A fresh, empty model cache for what follows. */
function freshCache(): string {
  const dir = join(TMP, `cache-${++caches}`)
  process.env.PGLITE_INFER_CACHE = dir
  return dir
}

async function createModel(name: string, source: string): Promise<void> {
  await db.query('select infer_create_model($1, $2)', [name, source])
}

async function stillWorks(): Promise<void> {
  const r = await db.query<{ one: number }>('select 1 as one')
  expect(r.rows).toEqual([{ one: 1 }])
}

async function countRequests(): Promise<number> {
  return (await hub.requests()).length
}

beforeAll(async () => {
  await rm(TMP, { recursive: true, force: true })
  await mkdir(TMP, { recursive: true })
  await extractVindexDir(QWEN_FIXTURE, VINDEX, { workers: 0, modelName: 'knowledge-qwen2-6l' })
  await extractVindexDir(QWEN_FIXTURE, VINDEX_INF, {
    workers: 0,
    modelName: 'knowledge-qwen2-6l',
    level: 'inference',
  })
  hub = await startHubServer()
  await hub.addRepo('org/knowledge-qwen2-6l', 'main', QWEN_FIXTURE)
  await hub.addRepo('org/revisioned', 'v1', QWEN_FIXTURE)
  for (const repo of [
    'no-tokenizer',
    'bad-weights',
    'bad-config',
    'odd-arch',
    'flaky',
    'slow',
    'silent',
  ])
    await hub.addRepo(`org/${repo}`, 'main', QWEN_FIXTURE)
  await hub.addStatic('/x.vindex', VINDEX)
  await hub.addStatic('/inf.vindex', VINDEX_INF)
  const sharded = await makeTinyCheckpoint('llama', {
    sharded: true,
    dir: join(TMP, 'tiny-sharded'),
  })
  await hub.addRepo('org/tiny-sharded', 'main', sharded.dir)
  await hub.addStatic('/bad.vindex', VINDEX)
  await hub.addStatic('/torn.vindex', VINDEX)
  process.env.HF_ENDPOINT = hub.url
  delete process.env.HF_TOKEN
  delete process.env.PGLITE_INFER_DOWNLOAD_TIMEOUT
  db = await openDb()
})

afterAll(async () => {
  await db?.close()
  await hub?.close()
  for (const [k, v] of Object.entries(SAVED_ENV)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  await rm(TMP, { recursive: true, force: true })
})

describe('hf:// sources', () => {
  it('downloads, extracts and registers a HuggingFace checkpoint', async () => {
    qwenCache = freshCache()
    await createModel('m', 'hf://org/knowledge-qwen2-6l')
    const rows = await db.query('SELECT * FROM walk($1, 5, $2)', ['The capital of France is', 'm'])
    expect(rows.rows).toHaveLength(5)
    const paths = await hub.requests()
    expect(paths).toContain('/org/knowledge-qwen2-6l/resolve/main/config.json')
    expect(paths).toContain('/org/knowledge-qwen2-6l/resolve/main/model.safetensors')
  })

  it('serves a second registration of the same source from the cache', async () => {
    const before = await countRequests()
    await createModel('m2', 'hf://org/knowledge-qwen2-6l')
    const a = await db.query('SELECT * FROM walk($1, 5, $2)', ['The capital of France is', 'm'])
    const b = await db.query('SELECT * FROM walk($1, 5, $2)', ['The capital of France is', 'm2'])
    expect(b.rows).toEqual(a.rows)
    // A reopened database (a new session) finds it in the cache too.
    const other = await openDb()
    try {
      await other.query('select infer_create_model($1, $2)', [
        'again',
        'hf://org/knowledge-qwen2-6l',
      ])
      const c = await other.query('SELECT * FROM walk($1, 5, $2)', [
        'The capital of France is',
        'again',
      ])
      expect(c.rows).toEqual(a.rows)
    } finally {
      await other.close()
    }
    expect(await countRequests()).toBe(before)
  })

  it('loads a cached model lazily after the database is reopened, without the network', async () => {
    process.env.PGLITE_INFER_CACHE = qwenCache
    const before = await countRequests()
    const dataDir = join(TMP, 'pgdata')
    const first = await PGlite.create({ dataDir, extensions: { infer: pgInfer } })
    await first.exec('CREATE EXTENSION pg_infer')
    await first.query("select infer_create_model('p', 'hf://org/knowledge-qwen2-6l')")
    const a = await first.query("select * from walk('The capital of France is', 5, 'p')")
    await first.close()
    const again = await PGlite.create({ dataDir, extensions: { infer: pgInfer } })
    try {
      // Loading from the cache is no download, so it works with auto_download off.
      await again.exec('SET infer.auto_download = off')
      const b = await again.query("select * from walk('The capital of France is', 5, 'p')")
      expect(b.rows).toEqual(a.rows)
    } finally {
      await again.close()
    }
    expect(await countRequests()).toBe(before)
  })

  it('downloads every shard that model.safetensors.index.json lists', async () => {
    freshCache()
    const before = (await hub.requests()).length
    await createModel('sharded', 'hf://org/tiny-sharded')
    const paths = (await hub.requests()).slice(before)
    const shards = paths.filter((p) => /model-\d+-of-\d+\.safetensors$/.test(p))
    expect(shards.length).toBeGreaterThanOrEqual(2)
    expect(paths).not.toContain('/org/tiny-sharded/resolve/main/model.safetensors')
    const models = await db.query<{ layers: number }>(
      "select layers from infer_models() where name = 'sharded'",
    )
    expect(models.rows).toEqual([{ layers: 2 }])
  })

  it('fetches the revision named after @', async () => {
    freshCache()
    const before = (await hub.requests()).length
    await createModel('rev', 'hf://org/revisioned@v1')
    const paths = (await hub.requests()).slice(before)
    expect(paths.length).toBeGreaterThan(0)
    expect(paths.every((p) => p.startsWith('/org/revisioned/resolve/v1/'))).toBe(true)
    const rows = await db.query('SELECT * FROM walk($1, 5, $2)', [
      'The capital of France is',
      'rev',
    ])
    expect(rows.rows).toHaveLength(5)
    // main does not exist for this repository
    const e = await sqlError(db, "select infer_create_model('rev2', 'hf://org/revisioned')")
    expect(e.code).toBe('58P01')
    expect(e.message).toContain(`${hub.url}/org/revisioned/resolve/main/config.json`)
    await stillWorks()
  })

  it('refuses to download when infer.auto_download is off', async () => {
    freshCache()
    const before = await countRequests()
    await db.exec('SET infer.auto_download = off')
    try {
      const e = (await db
        .query("select infer_create_model('off', 'hf://org/knowledge-qwen2-6l')")
        .then(
          () => undefined,
          (err: unknown) => err,
        )) as { code?: string; message: string; hint?: string } | undefined
      expect(e?.code).toBe('55000')
      expect(e?.message).toContain('infer.auto_download')
      expect(`${e?.message} ${e?.hint}`).toContain('SET infer.auto_download = on')
    } finally {
      await db.exec('RESET infer.auto_download')
    }
    expect(await countRequests()).toBe(before)
    await stillWorks()
  })

  it('reports a missing file with its URL (58P01)', async () => {
    freshCache()
    await hub.setRule('/org/no-tokenizer/resolve/main/tokenizer.json', { kind: 'notfound' })
    const e = await sqlError(db, "select infer_create_model('nt', 'hf://org/no-tokenizer')")
    expect(e.code).toBe('58P01')
    expect(e.message).toContain(`${hub.url}/org/no-tokenizer/resolve/main/tokenizer.json`)
    expect(e.message).toContain('404')
    await stillWorks()
    const missing = await sqlError(db, "select infer_create_model('nr', 'hf://org/no-such-model')")
    expect(missing.code).toBe('58P01')
    expect(missing.message).toContain(`${hub.url}/org/no-such-model/resolve/main/config.json`)
    await stillWorks()
  })

  it("maps the hub's 401 answers: not found (58P01) or private/gated (58000)", async () => {
    freshCache()
    await hub.setRule('/org/gone/resolve/main/config.json', {
      kind: 'body',
      status: 401,
      body: 'Repository not found',
      headers: { 'x-error-code': 'RepositoryNotFound' },
    })
    const gone = await sqlError(db, "select infer_create_model('g', 'hf://org/gone')")
    expect(gone.code).toBe('58P01')
    expect(gone.message).toContain('RepositoryNotFound')
    await hub.setRule('/org/gated/resolve/main/config.json', {
      kind: 'body',
      status: 403,
      body: 'Access to this model is restricted',
    })
    const gated = await sqlError(db, "select infer_create_model('g', 'hf://org/gated')")
    expect(gated.code).toBe('58000')
    expect(gated.message).toContain('HF_TOKEN')
    await stillWorks()
  })

  it('reports garbage weights and config as data corruption (XX001)', async () => {
    freshCache()
    await hub.setRule('/org/bad-weights/resolve/main/model.safetensors', { kind: 'garbage' })
    const w = await sqlError(db, "select infer_create_model('bw', 'hf://org/bad-weights')")
    expect(w.code).toBe('XX001')
    expect(w.message).toContain('model.safetensors')
    await stillWorks()
    await hub.setRule('/org/bad-config/resolve/main/config.json', { kind: 'garbage' })
    const c = await sqlError(db, "select infer_create_model('bc', 'hf://org/bad-config')")
    expect(c.code).toBe('XX001')
    expect(c.message).toContain('config.json: not valid JSON')
    await stillWorks()
    // Nothing was cached for the failed sources.
    expect(readdirSync(join(process.env.PGLITE_INFER_CACHE!, 'models'))).toEqual([])
  })

  it('refuses an unsupported architecture before downloading weights (0A000)', async () => {
    freshCache()
    const before = (await hub.requests()).length
    await hub.setRule('/org/odd-arch/resolve/main/config.json', {
      kind: 'body',
      body: JSON.stringify({ architectures: ['FooForCausalLM'], model_type: 'foo' }),
    })
    const e = await sqlError(db, "select infer_create_model('oa', 'hf://org/odd-arch')")
    expect(e.code).toBe('0A000')
    expect(e.message).toContain('FooForCausalLM')
    const paths = (await hub.requests()).slice(before)
    expect(paths).toEqual(['/org/odd-arch/resolve/main/config.json'])
    await stillWorks()
  })

  it('retries server errors a bounded number of times (58000)', async () => {
    freshCache()
    const path = '/org/flaky/resolve/main/config.json'
    await hub.setRule(path, { kind: 'error', status: 503 })
    const before = (await hub.requests()).length
    const e = await sqlError(db, "select infer_create_model('fl', 'hf://org/flaky')")
    expect(e.code).toBe('58000')
    expect(e.message).toContain(`${hub.url}${path}`)
    expect(e.message).toContain('503')
    expect((await hub.requests()).slice(before).filter((p) => p === path)).toHaveLength(3)
    await stillWorks()
  })

  it('gives up after PGLITE_INFER_DOWNLOAD_TIMEOUT (08006)', async () => {
    freshCache()
    await hub.setRule('/org/slow/resolve/main/model.safetensors', { kind: 'hang' })
    // long enough to reach the hanging file on a loaded 2-core machine
    process.env.PGLITE_INFER_DOWNLOAD_TIMEOUT = '4'
    const t0 = Date.now()
    try {
      const e = await sqlError(db, "select infer_create_model('sl', 'hf://org/slow')")
      expect(e.code).toBe('08006')
      expect(e.message).toContain('timed out')
      expect(e.message).toContain('model.safetensors')
    } finally {
      delete process.env.PGLITE_INFER_DOWNLOAD_TIMEOUT
    }
    expect(Date.now() - t0).toBeLessThan(10_000)
    await stillWorks()
  })

  it('gives up on a server that accepts and never answers after PGLITE_INFER_IDLE_TIMEOUT', async () => {
    freshCache()
    await hub.setRule('/org/silent/resolve/main/model.safetensors', { kind: 'hang' })
    process.env.PGLITE_INFER_IDLE_TIMEOUT = '0.5'
    const t0 = Date.now()
    try {
      const e = await sqlError(db, "select infer_create_model('si', 'hf://org/silent')")
      expect(e.code).toBe('08006')
      expect(e.message).toContain('sent nothing for')
    } finally {
      delete process.env.PGLITE_INFER_IDLE_TIMEOUT
    }
    // three attempts (two retries) of half a second each, far from the 600 s default
    expect(Date.now() - t0).toBeLessThan(10_000)
    await stillWorks()
  })
})

describe('fetchRemoteSync', () => {
  it('refuses to download an uncached hf:// source without autoDownload (55000)', () => {
    freshCache()
    expect(() => fetchRemoteSync('hf://org/knowledge-qwen2-6l', { autoDownload: false })).toThrow(
      expect.objectContaining({
        sqlstate: '55000',
        message: expect.stringContaining('SET infer.auto_download = on'),
      }),
    )
  })

  it('rejects malformed sources (22023)', () => {
    for (const bad of ['hf://', 'hf://a/b/c', 'hf://org/../x', 'hf://org/m@', 'hf://org/m@a/../b'])
      expect(() => fetchRemoteSync(bad, { autoDownload: true }), bad).toThrow(
        expect.objectContaining({ sqlstate: '22023' }),
      )
  })

  it('returns the cached vindex directory for a downloaded source', () => {
    freshCache()
    const files = fetchRemoteSync(`${hub.url}/x.vindex`, { autoDownload: false })
    expect(files.where).toContain(process.env.PGLITE_INFER_CACHE!)
    expect(files.read('index.json')).toBeInstanceOf(Uint8Array)
    expect(files.read('no-such-file')).toBeUndefined()
  })
})

describe('http(s):// vindex sources', () => {
  it('registers a vindex served over HTTP; it answers like the local copy', async () => {
    freshCache()
    await createModel('local', VINDEX)
    await createModel('web', `${hub.url}/x.vindex`)
    const local = await db.query('SELECT * FROM describe($1, $2)', ['France', 'local'])
    const web = await db.query('SELECT * FROM describe($1, $2)', ['France', 'web'])
    expect(local.rows.length).toBeGreaterThan(0)
    expect(web.rows).toEqual(local.rows)
    const before = await countRequests()
    await createModel('web2', `${hub.url}/x.vindex/`)
    expect(await countRequests()).toBe(before)
  })

  it('registers an inference-level vindex over HTTP (weights included); infer() answers like the local copy', async () => {
    freshCache()
    const before = await countRequests()
    await db.query("select infer_create_model('inf_local', $1, 'inference')", [VINDEX_INF])
    await db.query("select infer_create_model('inf_web', $1, 'inference')", [
      `${hub.url}/inf.vindex`,
    ])
    const fetched = (await hub.requests()).slice(before)
    // the weights: every file the index's weight entries name was fetched
    const index = JSON.parse(readFileSync(join(VINDEX_INF, 'index.json'), 'utf8')) as {
      weights?: { file: string }[]
    }
    const manifest =
      index.weights ??
      (JSON.parse(readFileSync(join(VINDEX_INF, 'weight_manifest.json'), 'utf8')) as {
        file: string
      }[])
    const weightFiles = [...new Set(manifest.map((e) => e.file))]
    expect(weightFiles.length).toBeGreaterThan(0)
    for (const f of weightFiles)
      expect(
        fetched.some((u) => u.endsWith(`/inf.vindex/${f}`)),
        f,
      ).toBe(true)
    const prompt = 'The capital of France is'
    const local = await db.query("select * from infer($1, 5, 'inf_local')", [prompt])
    const web = await db.query("select * from infer($1, 5, 'inf_web')", [prompt])
    expect(web.rows).toEqual(local.rows)
    expect((web.rows[0] as { token: string }).token).toBe(' Paris')
  })

  it("db.infer.createModel(url, { store: 'database' }) downloads with fetch, reports progress, and stores the files in the database", async () => {
    const own = await PGlite.create({ extensions: { infer: pgInfer } })
    await own.exec('create extension pg_infer')
    const seen: { file: string; filesDone: number; files: number }[] = []
    await own.infer.createModel('webdb', `${hub.url}/inf.vindex`, {
      level: 'inference',
      store: 'database',
      onProgress: (p) => seen.push(p),
    })
    const { rows } = await own.query<{ source: string }>(
      "select source from infer.models where name = 'webdb'",
    )
    expect(rows).toEqual([{ source: 'webdb.vindex' }]) // inside infer.data_directory
    const last = seen[seen.length - 1]!
    expect(last.filesDone).toBe(last.files)
    expect(new Set(seen.map((p) => p.file))).toContain('weight_manifest.json')
    const web = await own.query("select * from infer($1, 5, 'webdb')", ['The capital of France is'])
    await db.query("select infer_create_model('inf_local2', $1, 'inference')", [VINDEX_INF])
    const local = await db.query("select * from infer($1, 5, 'inf_local2')", [
      'The capital of France is',
    ])
    expect(web.rows).toEqual(local.rows)
    const missing = await own.infer
      .createModel('nope', `${hub.url}/missing.vindex`, { store: 'database' })
      .catch((e: Error) => e.message)
    expect(missing).toBe(`pglite-infer: ${hub.url}/missing.vindex/index.json: HTTP 404 Not Found`)
    await own.close()
  })

  it('reports a garbage index.json as data corruption (XX001)', async () => {
    freshCache()
    await hub.setRule('/bad.vindex/index.json', { kind: 'garbage' })
    const e = await sqlError(db, `select infer_create_model('bad', '${hub.url}/bad.vindex')`)
    expect(e.code).toBe('XX001')
    expect(e.message).toContain('index.json')
    await stillWorks()
  })

  it('reports a missing vindex file with its URL (58P01)', async () => {
    freshCache()
    await hub.setRule('/torn.vindex/down_meta.bin', { kind: 'notfound' })
    const e = await sqlError(db, `select infer_create_model('torn', '${hub.url}/torn.vindex')`)
    expect(e.code).toBe('58P01')
    expect(e.message).toContain(`${hub.url}/torn.vindex/down_meta.bin`)
    await stillWorks()
    // Restored, the same source downloads completely (no partial cache entry got in the way).
    await hub.setRule('/torn.vindex/down_meta.bin', null)
    await createModel('torn', `${hub.url}/torn.vindex`)
  })
})
