// Hostile input, transactions and corrupt models (issue 16): one test per
// class of defect, each a case that failed before the fix.
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { execFileSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, pgInfer, sqlError } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { makeTinyCheckpoint } from '../vindex/tiny-checkpoints.js'

let db: PGlite
let browse: string
let inference: string
const made: string[] = []

beforeAll(async () => {
  db = await openDb()
  browse = await fixtureVindex('f16')
  inference = await fixtureVindex('f16', 'inference')
})
afterAll(async () => {
  await db.close()
  made.forEach((d) => rmSync(d, { recursive: true, force: true }))
})

/** A copy of a vindex directory with index.json edited. */
function editedCopy(src: string, edit: (index: any) => void, prefix = 'edited'): string {
  const dir = join(scratchDir(prefix), 'model.vindex')
  made.push(dir)
  cpSync(src, dir, { recursive: true })
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'))
  edit(index)
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index))
  return dir
}

async function healthy(): Promise<void> {
  expect((await db.query('select 1 as ok')).rows).toEqual([{ ok: 1 }])
}

async function loaded(): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>('select name from infer_loaded_models()')
  return rows.map((r) => r.name).sort()
}

describe('confinement: SQL reaches no host file the application did not allow', () => {
  it('refuses absolute sources outside the allowed directories, saying nothing of what exists', async () => {
    const a = await sqlError(db, "select infer_create_model('h1', '/etc')")
    const b = await sqlError(db, "select infer_create_model('h1', '/no/such/dir')")
    expect(a.code).toBe('42501')
    expect(b.code).toBe('42501')
    expect(a.message.replace('/etc', 'X')).toBe(b.message.replace('/no/such/dir', 'X'))
    expect(a.message).toContain('outside the host directories this application allows')
    await healthy()
  })

  it('an application that allows no directory gets no host file at all', async () => {
    const plain = await openDb({ allowedHostDirectories: [] })
    const e = await sqlError(plain, 'select infer_create_model($1, $2)', ['h2', browse])
    expect(e.code).toBe('42501')
    expect(e.message).toContain('allows no host directory')
    await plain.close()
  })

  it('refuses weight files named by a path (../, absolute) before reading anything', async () => {
    for (const file of ['../../../../../etc/passwd', '/etc/passwd', 'index.json']) {
      const dir = editedCopy(inference, (i) => (i.weights[0].file = file), 'escape')
      const e = await sqlError(db, 'select infer_create_model($1, $2, $3)', [
        'h3',
        dir,
        'inference',
      ])
      expect(e.code).toBe('XX001')
      expect(e.message).toContain('weights live in their own plain files inside the vindex')
      expect(e.message).not.toContain('root:')
    }
    await healthy()
  })

  it('reads no link out of the vindex and never blocks on a FIFO', async () => {
    const linked = join(scratchDir('link'), 'model.vindex')
    made.push(linked)
    cpSync(browse, linked, { recursive: true })
    rmSync(join(linked, 'tokenizer.json'))
    symlinkSync(join(browse, 'tokenizer.json'), join(linked, 'tokenizer.json'))
    const e1 = await sqlError(db, 'select infer_create_model($1, $2)', ['h4', linked])
    expect(e1.code).toBe('XX001')
    expect(e1.message).toContain('is not a regular file')

    const fifo = join(scratchDir('fifo'), 'model.vindex')
    made.push(fifo)
    cpSync(browse, fifo, { recursive: true })
    rmSync(join(fifo, 'tokenizer.json'))
    execFileSync('mkfifo', [join(fifo, 'tokenizer.json')])
    const e2 = await sqlError(db, 'select infer_create_model($1, $2)', ['h4', fifo])
    expect(e2.code).toBe('XX001')
    expect(e2.message).toContain('is not a regular file')
    await healthy()
  })

  it('infer.data_directory is a relative path of plain names, never "." or PostgreSQL\'s own', async () => {
    for (const v of ['.', '..', 'a/../..', '/tmp', 'base', 'global/x', 'pg_wal', '.hidden', ''])
      expect((await sqlError(db, `set infer.data_directory = '${v}'`)).code).toBe('22023')
    await db.exec("set infer.data_directory = 'models/v1'")
    await db.exec('reset infer.data_directory')
  })
})

describe('validation: a config the forward pass cannot run never loads', () => {
  let gpt2: string
  let llama: string
  beforeAll(async () => {
    for (const family of ['gpt2', 'llama'] as const) {
      const ck = await makeTinyCheckpoint(family, { seed: 3 })
      made.push(ck.dir)
      const out = join(scratchDir(`tiny-${family}`), 'model.vindex')
      made.push(out)
      await extractVindexDir(ck.dir, out, { level: 'inference', workers: 0 })
      if (family === 'gpt2') gpt2 = out
      else llama = out
    }
  })

  it('a GPT-2 whose config disagrees with its fused layout is refused, and the session lives', async () => {
    const crafted: [string, (c: any) => void][] = [
      ['rope positions', (c) => (c.position_embedding = 'rope')],
      ['gated ffn', (c) => (c.ffn_type = 'gated')],
      ['heads x head_dim != hidden', (c) => (c.head_dim = c.head_dim * 2)],
      ['no position table', (c) => delete c.max_position_embeddings],
    ]
    for (const [what, edit] of crafted) {
      const dir = editedCopy(gpt2, (i) => edit(i.model_config), 'gpt2')
      const e = await sqlError(db, 'select infer_create_model($1, $2, $3)', [
        'g1',
        dir,
        'inference',
      ])
      expect(e.code, what).toBe('XX001')
      expect(e.message, what).toContain('model_config')
      await healthy()
    }
    // the untouched one runs
    await db.query("select infer_create_model('g1', $1, 'inference')", [gpt2])
    expect((await db.query("select * from infer('hello', 3, 'g1')")).rows).toHaveLength(3)
    await db.query("select infer_drop_model('g1')")
  })

  it('out-of-range and mistyped config values are refused by name', async () => {
    const crafted: [string, (i: any) => void][] = [
      ['embed_scale', (i) => (i.embed_scale = 0)],
      ['norm_eps', (i) => (i.model_config.norm_eps = 2147483647)],
      ['rope_base', (i) => (i.model_config.rope_base = -0.5)],
      ['norm_type', (i) => (i.model_config.norm_type = [])],
      ['position_embedding', (i) => (i.model_config.position_embedding = 'learned')],
      ['num_layers', (i) => (i.num_layers = 1e9)],
      ['layers', (i) => (i.layers[0] = null)],
    ]
    for (const [field, edit] of crafted) {
      const dir = editedCopy(llama, edit, 'llama')
      const e = await sqlError(db, 'select infer_create_model($1, $2, $3)', [
        'g2',
        dir,
        'inference',
      ])
      expect(e.code, field).toBe('XX001')
      expect(e.message, field).toContain(field)
      expect(e.message, field).not.toMatch(/TypeError|undefined|Cannot read/)
    }
    await healthy()
  })
})

describe('corruption is never accepted silently', () => {
  it('a flipped byte fails the checksum; infer.verify_checksums = off trusts the source', async () => {
    const dir = join(scratchDir('flip'), 'model.vindex')
    made.push(dir)
    cpSync(browse, dir, { recursive: true })
    const emb = readFileSync(join(dir, 'embeddings.bin'))
    emb[1000] ^= 0x40
    writeFileSync(join(dir, 'embeddings.bin'), emb)
    const e = await sqlError(db, 'select infer_create_model($1, $2)', ['c1', dir])
    expect(e.code).toBe('XX001')
    expect(e.message).toContain('embeddings.bin: sha256 does not match index.json')
    await db.exec('set infer.verify_checksums = off')
    await db.query("select infer_create_model('c1', $1)", [dir])
    await db.exec('reset infer.verify_checksums')
    await db.query("select infer_drop_model('c1')")
  })

  it('weight entries that overlap, are misaligned or negative are refused', async () => {
    const crafted: ((i: any) => void)[] = [
      (i) => (i.weights[1].offset = i.weights[0].offset),
      (i) => (i.weights[0].offset += 1),
      (i) => (i.weights[0].offset = -2),
    ]
    for (const edit of crafted) {
      const dir = editedCopy(inference, edit, 'weights')
      const e = await sqlError(db, 'select infer_create_model($1, $2, $3)', [
        'c2',
        dir,
        'inference',
      ])
      expect(e.code).toBe('XX001')
    }
    await healthy()
  })
})

describe('transactions leave no ghosts', () => {
  it('a rolled-back create releases the model; 70 of them leave room for more', async () => {
    for (let i = 0; i < 70; i++) {
      await db.exec('begin')
      await db.query('select infer_create_model($1, $2)', [`rb${i}`, browse])
      await db.exec('rollback')
    }
    expect(await loaded()).toEqual([])
    await db.query("select infer_create_model('rb', $1)", [browse])
    expect(await loaded()).toEqual(['rb'])
    await db.query("select infer_drop_model('rb')")
  })

  it('a rollback to a savepoint releases what the savepoint loaded', async () => {
    await db.exec('begin')
    await db.exec('savepoint s')
    await db.query("select infer_create_model('sp', $1)", [browse])
    await db.exec('rollback to savepoint s')
    await db.exec('commit')
    expect(await loaded()).toEqual([])
  })

  it('a rolled-back model index leaves nothing: the next one answers with its own data', async () => {
    const other = editedCopy(browse, () => {}, 'other')
    // the same vindex with another embedding scale answers differently
    const scaled = editedCopy(browse, (i) => (i.embed_scale = i.embed_scale * 3), 'scaled')
    await db.exec('begin')
    await db.exec(`create index mix on infer._models using infer (name) with (source = '${other}')`)
    await db.exec('rollback')
    await db.exec(
      `create index mix on infer._models using infer (name) with (source = '${scaled}')`,
    )
    await db.query("select infer_create_model('mixref', $1)", [scaled])
    const q = "select layer, feature, round(activation::numeric, 4) as a from walk('France', 5, $1)"
    expect((await db.query(q, ['mix'])).rows).toEqual((await db.query(q, ['mixref'])).rows)
    await db.query("select infer_drop_model('mix')")
    await db.query("select infer_drop_model('mixref')")
  })

  it('DROP EXTENSION releases every model', async () => {
    const own = await openDb()
    await own.query("select infer_create_model('d1', $1)", [browse])
    await own.exec('DROP EXTENSION pg_infer CASCADE')
    await own.exec('CREATE EXTENSION pg_infer')
    expect((await own.query('select name from infer_loaded_models()')).rows).toEqual([])
    await own.close()
  })

  it('createModel over an existing name writes nothing; a refused vindex leaves no files', async () => {
    const own = await openDb()
    const files = (dir: string) =>
      new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]))
    await own.infer.createModel('cm', files(browse))
    const before = await own.query<{ b: Uint8Array }>(
      "select pg_read_binary_file('infer/cm.vindex/index.json') as b",
    )
    const scaled = editedCopy(browse, (i) => (i.embed_scale = 2), 'cm')
    await expect(own.infer.createModel('cm', files(scaled))).rejects.toThrow(/already exists/)
    const after = await own.query<{ b: Uint8Array }>(
      "select pg_read_binary_file('infer/cm.vindex/index.json') as b",
    )
    expect(after.rows[0]!.b).toEqual(before.rows[0]!.b)
    // a corrupt vindex is refused and its files are gone
    const bad = files(browse)
    bad.get('embeddings.bin')![10] ^= 1
    await expect(own.infer.createModel('cm2', bad)).rejects.toThrow(/sha256/)
    const e = await sqlError(own, "select pg_stat_file('infer/cm2.vindex')")
    expect(e.code).toBe('58P01')
    await own.close()
  })
})

describe('bounded work: nothing a SQL caller sends runs without bound', () => {
  it('infer_tokenize refuses a tokenizer regex that backtracks exponentially, at once', async () => {
    const tokenizer = JSON.stringify({
      version: '1.0',
      model: { type: 'WordLevel', vocab: { a: 0, b: 1, '[UNK]': 2 }, unk_token: '[UNK]' },
      pre_tokenizer: { type: 'Split', pattern: { Regex: '(a+)+b' }, behavior: 'Isolated' },
    })
    const t0 = performance.now()
    const e = await sqlError(db, 'select infer_tokenize($1, $2)', ['a'.repeat(34) + 'c', tokenizer])
    expect(e.code).toBe('22023')
    expect(e.message).toContain('exponential backtracking')
    expect(performance.now() - t0).toBeLessThan(5000)
  })

  it('statement_timeout ends long pg_infer work with 57014 (PGlite has no SIGALRM)', async () => {
    await db.query("select infer_create_model('st', $1)", [browse])
    await db.exec('create table st_docs (t text)')
    await db.exec(
      "insert into st_docs select 'country number ' || i || ' and its capital' from generate_series(1, 20000) i",
    )
    await db.exec("set statement_timeout = '300ms'")
    try {
      for (const sql of [
        "create index st_i on st_docs using infer (t) with (model = 'st')",
        "select t from st_docs order by infer_distance(t, 'France', 'st') limit 3",
      ]) {
        const t0 = performance.now()
        const e = await sqlError(db, sql)
        const ms = performance.now() - t0
        expect(e.code, sql).toBe('57014')
        expect(e.message).toBe('canceling statement due to statement timeout')
        // the check runs between steps of a few milliseconds each
        expect(ms, sql).toBeLessThan(300 + 1500)
      }
    } finally {
      await db.exec('reset statement_timeout')
    }
    await healthy()
    await db.exec('drop table st_docs')
    await db.query("select infer_drop_model('st')")
  })

  it('caps text size (infer.max_input_bytes) and context (infer.max_context)', async () => {
    await db.query("select infer_create_model('bw', $1, 'inference')", [inference])
    const big = await sqlError(db, "select * from infer(repeat('France ', 300000), 1, 'bw')")
    expect(big.code).toBe('54000')
    expect(big.message).toContain('infer.max_input_bytes')
    await db.exec('set infer.max_context = 8')
    const long = await sqlError(db, "select * from infer(repeat('France ', 20), 1, 'bw')")
    expect(long.code).toBe('54000')
    expect(long.message).toContain('infer.max_context')
    await db.exec('reset infer.max_context')
    expect((await db.query("select * from infer('France', 1, 'bw')")).rows).toHaveLength(1)
    await db.query("select infer_drop_model('bw')")
  })
})

describe('dependencies cannot be bypassed', () => {
  it('an index keeps its model: ALTER INDEX SET, DELETE and TRUNCATE of the registry are refused', async () => {
    await db.query("select infer_create_model('dep', $1)", [browse])
    await db.query("select infer_create_model('dep2', $1)", [browse])
    await db.exec('create table dep_docs (t text)')
    await db.exec("insert into dep_docs values ('France'), ('Paris')")
    await db.exec("create index dep_i on dep_docs using infer (t) with (model = 'dep')")
    expect((await sqlError(db, "alter index dep_i set (model = 'dep2')")).code).toBe('0A000')
    expect((await sqlError(db, 'alter index dep_i reset (model)')).code).toBe('0A000')
    expect((await sqlError(db, "delete from infer.models where name = 'dep'")).code).toBe('2BP01')
    expect((await sqlError(db, "update infer.models set name = 'x' where name = 'dep'")).code).toBe(
      '2BP01',
    )
    expect((await sqlError(db, 'truncate infer.models cascade')).code).toBe('2BP01')
    expect((await sqlError(db, "select infer_drop_model('dep')")).code).toBe('2BP01')
    await db.exec('drop table dep_docs')
    await db.query("select infer_drop_model('dep')")
    await db.query("select infer_drop_model('dep2')")
  })

  it('a model index is built on infer._models only, and cannot be renamed away from its model', async () => {
    await db.exec('create table infer.other (name text)')
    const e = await sqlError(
      db,
      `create index elsewhere on infer.other using infer (name) with (source = '${browse}')`,
    )
    expect(e.code).toBe('0A000')
    await db.exec('drop table infer.other')
    await db.exec(
      `create index kept on infer._models using infer (name) with (source = '${browse}')`,
    )
    expect((await sqlError(db, 'alter index infer.kept rename to moved')).code).toBe('0A000')
    expect(
      (await db.query("select count(*)::int as n from walk('France', 3, 'kept')")).rows,
    ).toEqual([{ n: 3 }])
    await db.query("select infer_drop_model('kept')")
  })
})

describe('maintenance commands work on infer._models and its model indexes', () => {
  it('REINDEX, VACUUM FULL, TRUNCATE and CLUSTER keep the stored model answering', async () => {
    const own = await openDb()
    await own.exec(
      `create index kept on infer._models using infer (name) with (source = '${browse}')`,
    )
    const q =
      "select layer, feature, round(activation::numeric, 5) as a from walk('France', 5, 'kept')"
    const expected = (await own.query(q)).rows
    for (const sql of [
      'reindex index infer.kept',
      'reindex table infer._models',
      'reindex schema infer',
      'vacuum full infer._models',
      'vacuum full',
      'truncate infer._models',
    ]) {
      await own.exec(sql)
      expect((await own.query(q)).rows, sql).toEqual(expected)
    }
    // the rebuilt pages, loaded by a fresh backend, hold the same model
    const archive = await own.dumpDataDir()
    await own.close()
    const restored = await PGlite.create({ loadDataDir: archive, extensions: { infer: pgInfer } })
    expect((await restored.query(q)).rows).toEqual(expected)
    await restored.close()
  })
})

describe('plans and defaults: an index scan answers what the sort answers', () => {
  it('under another infer.default_model, a cached generic plan and enable_seqscan = off', async () => {
    // another model: the same weights at level inference compare knowledge states, not embeddings
    await db.query("select infer_create_model('pa', $1)", [browse])
    await db.query("select infer_create_model('pb', $1, 'inference')", [inference])
    await db.exec('create table plan_docs (id int, t text)')
    await db.query(
      'insert into plan_docs select i, w from unnest($1::text[]) with ordinality u(w, i)',
      [['France', 'Paris', 'Germany', 'Berlin', 'euro', 'Japan', 'yen', '', null, 'Tokyo']],
    )
    await db.exec("create index plan_i on plan_docs using infer (t) with (model = 'pa')")
    const sorted = async (model: string) => {
      await db.exec(`set infer.default_model = '${model}'`)
      await db.exec('set enable_indexscan = off')
      const { rows } = await db.query<{ id: number; d: number | null }>(
        "select id, t <~> 'France' as d from plan_docs order by t <~> 'France', id",
      )
      await db.exec('reset enable_indexscan')
      return rows
    }
    const underA = await sorted('pa')
    const underB = await sorted('pb')
    expect(underB.map((r) => r.d)).not.toEqual(underA.map((r) => r.d))

    await db.exec("set infer.default_model = 'pa'")
    await db.exec('set plan_cache_mode = force_generic_plan')
    await db.exec('set enable_seqscan = off')
    await db.exec(
      'prepare near(text) as select id, t <~> $1 as d from plan_docs order by t <~> $1, id limit 10',
    )
    const viaA = (await db.query("execute near('France')")).rows
    expect(viaA).toEqual(underA)
    await db.exec("set infer.default_model = 'pb'")
    const viaB = (await db.query("execute near('France')")).rows
    expect(viaB).toEqual(underB)
    const plan = (await db.query<{ 'QUERY PLAN': string }>("explain execute near('France')")).rows
    expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toContain('Index Scan')
    await db.exec('deallocate near')
    await db.exec('reset plan_cache_mode')
    await db.exec('reset enable_seqscan')
    await db.exec('reset infer.default_model')
    await db.exec('drop table plan_docs')
  })
})

describe('no use after free', () => {
  it('describe() keeps working on a model dropped and re-created while it runs', async () => {
    await db.query("select infer_create_model('uaf', $1)", [browse])
    const expected = (await db.query("select * from describe('France', 'uaf')")).rows
    // feature_labels is read in the middle of describe(): make that read
    // drop and re-create the model describe() is holding
    await db.exec('create table infer.churned (n int)')
    await db.query(
      `create function infer.churn() returns boolean language plpgsql as $$
       begin
         insert into infer.churned values (1);
         perform infer_drop_model('uaf');
         perform infer_create_model('uaf', '${browse}');
         return true;
       end $$`,
    )
    await db.exec(
      `create or replace view infer.feature_labels as
       select model, layer, feature, sign, relation, subjects
       from (select infer.churn() as churned offset 0) c, infer.feature_label_data
       union all
       select null, null, null, null, null, null from (select infer.churn() offset 0) c
       where false`,
    )
    try {
      expect((await db.query("select * from describe('France', 'uaf')")).rows).toEqual(expected)
      // the view really did drop and re-create the model under describe()
      expect((await db.query('select count(*)::int as n from infer.churned')).rows).toEqual([
        { n: 1 },
      ])
    } finally {
      await db.exec(
        `create or replace view infer.feature_labels as
         select model, layer, feature, sign, relation, subjects from infer.feature_label_data`,
      )
      await db.exec('drop function infer.churn()')
      await db.exec('drop table infer.churned')
    }
    await healthy()
    await db.query("select infer_drop_model('uaf')")
  })
})

describe('no stale signatures', () => {
  it("similar_to within a statement that re-creates its model: the statement's snapshot, then the new model", async () => {
    // re-created at level inference: similar_to then compares knowledge states
    await db.query("select infer_create_model('sc', $1)", [browse])
    await db.query(
      `create function infer.swap_sc() returns int language plpgsql as $$
       begin
         perform infer_drop_model('sc');
         perform infer_create_model('sc', '${inference}', 'inference');
         return 1;
       end $$`,
    )
    const { rows } = await db.query<{ v: number; s: number }>(
      `select v, case when v = 2 then infer.swap_sc() end as swapped,
              similar_to('France', 'Germany', 'sc') as s
       from generate_series(1, 2) v order by v`,
    )
    const fresh = (
      await db.query<{ s: number }>("select similar_to('France', 'Germany', 'sc') as s")
    ).rows[0]!.s
    // similar_to is STABLE: the whole statement reads the registry as it was
    // when the statement began, so both rows score the model it named then
    // (reloaded from that source, never from a freed or foreign cache) ...
    expect(rows[1]!.s).toBeCloseTo(rows[0]!.s, 10)
    // ... and the next statement scores the re-created one
    expect(fresh).not.toBeCloseTo(rows[0]!.s, 6)
    await db.query("select infer_create_model('sc2', $1, 'inference')", [inference])
    const want = (
      await db.query<{ s: number }>("select similar_to('France', 'Germany', 'sc2') as s")
    ).rows[0]!.s
    expect(fresh).toBe(want)
    await db.exec('drop function infer.swap_sc()')
    await db.query("select infer_drop_model('sc')")
    await db.query("select infer_drop_model('sc2')")
  })
})

describe('smaller defects', () => {
  it('walk(prompt, NULL) is 22004 as documented', async () => {
    await db.query("select infer_create_model('w', $1)", [browse])
    expect((await sqlError(db, "select * from walk('France', NULL, 'w')")).code).toBe('22004')
  })

  it('an infer-indexed table stores empty and huge texts; the scan still equals the sort', async () => {
    await db.exec("set infer.default_model = 'w'")
    await db.exec('create table odd (id int, t text)')
    await db.exec("create index odd_i on odd using infer (t) with (model = 'w')")
    await db.exec(
      "insert into odd values (1, ''), (2, 'France'), (3, repeat('x', 70000)), (4, NULL), (5, 'Paris')",
    )
    await db.exec('reindex index odd_i')
    const q = "select id from odd order by t <~> 'France', id limit 5"
    await db.exec('set enable_seqscan = off')
    const viaIndex = (await db.query<{ id: number }>(q)).rows.map((r) => r.id)
    await db.exec('reset enable_seqscan')
    await db.exec('drop index odd_i')
    const viaSort = (await db.query<{ id: number }>(q)).rows.map((r) => r.id)
    expect(viaIndex).toEqual(viaSort)
    expect(viaSort.slice(0, 2)).toEqual([2, 5])
    expect((await db.query("select infer_distance('', 'France') as d")).rows).toEqual([{ d: null }])
    await db.exec('drop table odd')
    await db.exec('reset infer.default_model')
  })
})
