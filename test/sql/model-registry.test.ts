// The model registry: infer_create_model / infer_drop_model / infer_models(),
// persistence across reopening a data directory, lazy loading, the memory
// limit, and the TypeScript API db.infer.
import { createTar, createTarGzip } from 'nanotar'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { openDb, openPersistent, sqlError } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

let vindex: string
beforeAll(async () => {
  vindex = await fixtureVindex('f16')
})

function vindexFiles(dir: string): Map<string, Uint8Array> {
  return new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]))
}

describe('infer_create_model / infer_models / infer_drop_model', () => {
  it('registers, lists, reports memory, and drops', async () => {
    const db = await openDb()
    expect((await db.query("select infer_create_model('q', $1) as n", [vindex])).rows).toEqual([
      { n: 'q' },
    ])
    const { rows } = await db.query<Record<string, unknown>>('select * from infer_models()')
    // gate 6 x 1024 x 256 f16 + embeddings 2595 x 256 f16 + down_meta 6 x 1024 x 10
    // (int32 token, f32 logit)
    const bytes = 6 * 1024 * 256 * 2 + 2595 * 256 * 2 + 6 * 1024 * 10 * 8
    const registeredAt = rows[0]!.registered_at as Date
    expect(Math.abs(Date.now() - registeredAt.getTime())).toBeLessThan(60_000)
    expect(rows).toEqual([
      {
        // pg_infer's columns, then pglite-infer's own
        model_name: 'q',
        vindex_path: vindex,
        num_layers: 6,
        hidden_size: 256,
        vocab_size: 2595,
        registered_at: registeredAt,
        backend: 'local',
        server_url: null,
        name: 'q',
        source: vindex,
        architecture: 'knowledge-qwen2-6l',
        layers: 6,
        hidden: 256,
        features: 1024,
        vocab: 2595,
        dtype: 'f16',
        extract_level: 'browse',
        bytes,
        loaded: true,
        compute: 'wasm',
        compute_bytes: 0,
        heap_bytes: bytes,
        backend_bytes: 0,
        weights: 'heap',
      },
    ])
    expect((await db.query("select infer_drop_model('q') as r")).rows).toEqual([
      { r: "model 'q' dropped" },
    ])
    expect((await db.query('select * from infer_models()')).rows).toEqual([])
    expect((await db.query('select * from infer_loaded_models()')).rows).toEqual([])
    const err = await sqlError(db, "select * from walk('France', 3, 'q')")
    expect(err.code).toBe('42704')
    await db.close()
  })

  it('a create rolled back leaves no model behind', async () => {
    const db = await openDb()
    await db.exec('BEGIN')
    await db.query("select infer_create_model('r', $1)", [vindex])
    await db.exec('ROLLBACK')
    expect((await db.query('select * from infer_models()')).rows).toEqual([])
    expect((await sqlError(db, "select * from walk('France', 3, 'r')")).code).toBe('42704')
    // and the name is free again
    await db.query("select infer_create_model('r', $1)", [vindex])
    expect((await db.query("select count(*)::int as n from walk('France', 3, 'r')")).rows).toEqual([
      { n: 3 },
    ])
    await db.close()
  })

  it('infer.max_memory is enforced with the sizes in the message', async () => {
    const db = await openDb()
    await db.exec("set infer.max_memory = '4MB'")
    const err = await sqlError(db, "select infer_create_model('big', $1)", [vindex])
    expect(err).toEqual({
      code: '53200',
      message: 'loading model "big" needs 5 MB but infer.max_memory allows 4 MB',
    })
    await db.exec("set infer.max_memory = '8MB'")
    await db.query("select infer_create_model('big', $1)", [vindex])
    const second = await sqlError(db, "select infer_create_model('big2', $1)", [vindex])
    expect(second.code).toBe('53200')
    expect((await db.query('show infer.max_memory')).rows).toEqual([{ 'infer.max_memory': '8MB' }])
    await db.close()
  })

  it('infer.max_memory defaults to what the WASM heap can hold', async () => {
    const db = await openDb()
    expect((await db.query('show infer.max_memory')).rows).toEqual([{ 'infer.max_memory': '2GB' }])
    await db.close()
  })
})

describe('persistence', () => {
  it('models survive closing and reopening a data directory and load lazily', async () => {
    const dataDir = join(scratchDir('persist'), 'pgdata')
    const db = await openPersistent(dataDir)
    await db.query("select infer_create_model('q', $1)", [vindex])
    const before = (await db.query("select * from walk('The capital of France is', 8, 'q')")).rows
    await db.close()

    const again = await openPersistent(dataDir)
    const listed = await again.query<{ name: string; loaded: boolean; bytes: number }>(
      'select name, loaded, bytes from infer_models()',
    )
    expect(listed.rows).toEqual([{ name: 'q', loaded: false, bytes: 0 }])
    const after = (await again.query("select * from walk('The capital of France is', 8, 'q')")).rows
    expect(after).toEqual(before)
    expect((await again.query('select loaded from infer_models()')).rows).toEqual([
      { loaded: true },
    ])
    await again.close()
  })

  it('db.infer.createModel stores bytes in the database, which then needs no source files', async () => {
    const dataDir = join(scratchDir('bytes'), 'pgdata')
    const db = await openPersistent(dataDir)
    expect(await db.infer.createModel('fromBytes', vindexFiles(vindex))).toBe('fromBytes')
    const models = await db.infer.models()
    expect(models.map((m) => [m.name, m.source, m.loaded])).toEqual([
      ['fromBytes', 'fromBytes.vindex', true],
    ])
    const before = (await db.query("select * from describe('Japan', 'fromBytes')")).rows
    await db.close()
    // the vindex now lives under PGDATA/infer/
    expect(readdirSync(join(dataDir, 'infer', 'fromBytes.vindex'))).toContain('gate_vectors.bin')

    const again = await openPersistent(dataDir)
    expect((await again.query("select * from describe('Japan', 'fromBytes')")).rows).toEqual(before)
    await again.infer.dropModel('fromBytes')
    expect(await again.infer.models()).toEqual([])
    await again.close()
  })

  it('db.infer.createModel takes a tar or tar.gz archive (what a browser user uploads)', async () => {
    const db = await openDb()
    const entries = [...vindexFiles(vindex)].map(([name, data]) => ({
      name: `model.vindex/${name}`,
      data,
    }))
    await db.infer.createModel('tarred', createTar(entries))
    await db.infer.createModel('gzipped', new Blob([new Uint8Array(await createTarGzip(entries))]))
    const a = (await db.query("select * from walk('Paris', 5, 'tarred')")).rows
    const b = (await db.query("select * from walk('Paris', 5, 'gzipped')")).rows
    expect(a).toHaveLength(5)
    expect(b).toEqual(a)
    await expect(
      db.infer.createModel('notavindex', createTar([{ name: 'x.txt', data: 'hi' }])),
    ).rejects.toThrow(/no index\.json/)
    await db.close()
  })
})
