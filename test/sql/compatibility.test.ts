// Compatibility with pg_infer (github.com/gburd/pg_infer): its regression
// test sql/pg_infer.sql ported statement by statement against its
// expected/pg_infer.out, and the operators and batch functions of its
// surface. docs/compatibility.md lists every deliberate difference; the
// statements whose output differs on purpose assert our output exactly.
import type { PGlite } from '@electric-sql/pglite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'
import { ReferenceModel } from '../reference/knowledge.js'

const signature = (name: string) =>
  `SELECT proname, pg_get_function_arguments(oid) AS args,
          pg_get_function_result(oid) AS rettype
   FROM pg_proc WHERE proname = '${name}' AND prokind = 'f'
   ORDER BY proname, args`

interface Statement {
  sql: string
  /** expected/pg_infer.out's rows */
  peer: Record<string, unknown>[]
  /** where pglite-infer differs on purpose (docs/compatibility.md): its rows */
  ours?: Record<string, unknown>[]
}

const TABLE_INFER_MODELS =
  'TABLE(model_name text, vindex_path text, source text, extract_level text, num_layers integer, hidden_size integer, vocab_size integer, registered_at timestamp with time zone'

const STATEMENTS: Statement[] = [
  { sql: 'SHOW infer.default_model', peer: [{ 'infer.default_model': '' }] },
  {
    sql: 'SHOW infer.max_memory',
    peer: [{ 'infer.max_memory': '8192' }],
    // capped at what the 2 GiB WebAssembly heap can hold
    ours: [{ 'infer.max_memory': '2GB' }],
  },
  { sql: 'SHOW infer.auto_download', peer: [{ 'infer.auto_download': 'on' }] },
  { sql: 'SHOW infer.data_directory', peer: [{ 'infer.data_directory': 'infer' }] },
  { sql: 'SELECT count(*)::int AS count FROM infer.models', peer: [{ count: 0 }] },
  { sql: 'SELECT * FROM infer_models()', peer: [] },
  {
    sql: signature('describe'),
    peer: [
      {
        proname: 'describe',
        args: 'entity text, model text DEFAULT NULL::text',
        rettype: 'TABLE(relation text, target text, confidence double precision, layer integer)',
      },
    ],
    ours: [
      {
        proname: 'describe',
        args: 'entity text, model text DEFAULT NULL::text, threshold double precision DEFAULT NULL::double precision',
        rettype: 'TABLE(relation text, target text, confidence double precision, layer integer)',
      },
    ],
  },
  {
    sql: signature('walk'),
    peer: [
      {
        proname: 'walk',
        args: 'prompt text, top integer DEFAULT NULL::integer, model text DEFAULT NULL::text',
        rettype: 'TABLE(layer integer, feature integer, activation double precision, concept text)',
      },
    ],
    ours: [
      {
        proname: 'walk',
        args: 'prompt text, top integer DEFAULT 10, model text DEFAULT NULL::text, mode text DEFAULT NULL::text, band text DEFAULT NULL::text, per_layer boolean DEFAULT false',
        rettype: 'TABLE(layer integer, feature integer, activation double precision, concept text)',
      },
    ],
  },
  {
    sql: signature('infer'),
    peer: [
      {
        proname: 'infer',
        args: 'prompt text, top integer DEFAULT NULL::integer, model text DEFAULT NULL::text',
        rettype: 'TABLE(token text, probability double precision, rank integer)',
      },
    ],
    ours: [
      {
        proname: 'infer',
        args: 'prompt text, top integer DEFAULT 10, model text DEFAULT NULL::text',
        rettype: 'TABLE(token text, probability double precision, rank integer)',
      },
    ],
  },
  {
    sql: signature('similar_to'),
    peer: [
      {
        proname: 'similar_to',
        args: 'a text, b text, model text DEFAULT NULL::text',
        rettype: 'double precision',
      },
    ],
  },
  {
    sql: signature('implies'),
    peer: [
      {
        proname: 'implies',
        args: 'subject text, object text, model text DEFAULT NULL::text',
        rettype: 'boolean',
      },
    ],
  },
  {
    sql: signature('infer_create_model'),
    peer: [
      {
        proname: 'infer_create_model',
        args: 'model_name text, source text, extract_level text DEFAULT NULL::text',
        rettype: 'text',
      },
    ],
  },
  {
    sql: signature('infer_drop_model'),
    peer: [{ proname: 'infer_drop_model', args: 'model_name text', rettype: 'text' }],
  },
  {
    sql: signature('infer_models'),
    peer: [{ proname: 'infer_models', args: '', rettype: `${TABLE_INFER_MODELS})` }],
    ours: [
      {
        proname: 'infer_models',
        args: '',
        rettype: `${TABLE_INFER_MODELS}, backend text, server_url text, architecture text, features integer, dtype text, bytes bigint, loaded boolean, name text, layers integer, hidden integer, vocab integer, compute text, compute_bytes bigint, heap_bytes bigint, backend_bytes bigint, weights text)`,
      },
    ],
  },
  {
    sql: signature('infer_distance'),
    peer: [{ proname: 'infer_distance', args: 'a text, b text', rettype: 'double precision' }],
    ours: [
      { proname: 'infer_distance', args: 'a text, b text', rettype: 'double precision' },
      {
        proname: 'infer_distance',
        args: 'a text, b text, model text',
        rettype: 'double precision',
      },
    ],
  },
  {
    sql: `SELECT oprname, oprleft::regtype::text AS oprleft, oprright::regtype::text AS oprright
          FROM pg_operator WHERE oprname = '<~>'`,
    peer: [{ oprname: '<~>', oprleft: 'text', oprright: 'text' }],
  },
]

describe("pg_infer's regression test (sql/pg_infer.sql), ported", () => {
  let db: PGlite
  beforeAll(async () => {
    db = await openDb() // CREATE EXTENSION pg_infer: its first statement
  })
  afterAll(async () => {
    await db?.close()
  })

  it.each(STATEMENTS.map((s) => [s.sql.replace(/\s+/g, ' ').slice(0, 70), s] as const))(
    '%s',
    async (_, s) => {
      const { rows } = await db.query(s.sql)
      expect(rows).toEqual(s.ours ?? s.peer)
    },
  )

  it('same output as the peer for all but the documented statements', () => {
    expect(STATEMENTS.filter((s) => s.ours).length).toBe(6)
    expect(STATEMENTS.filter((s) => !s.ours).length).toBe(10)
  })

  it('DROP EXTENSION pg_infer (the last statement) removes it', async () => {
    await db.exec('DROP EXTENSION pg_infer')
    expect((await db.query("select * from pg_extension where extname = 'pg_infer'")).rows).toEqual(
      [],
    )
  })
})

describe("the rest of pg_infer's surface", () => {
  let db: PGlite
  let ref: ReferenceModel
  beforeAll(async () => {
    ref = ReferenceModel.load(QWEN_FIXTURE)
    db = await openDb()
    await db.query('select infer_create_model(model_name => $1, source => $2)', [
      'q',
      await fixtureVindex('f32'),
    ])
    await db.exec("set infer.default_model = 'q'")
  })
  afterAll(async () => {
    await db?.close()
  })

  it('infer_create_model: a NULL extract_level means browse', async () => {
    const { rows } = await db.query(
      "select extract_level from infer_models() where model_name = 'q'",
    )
    expect(rows).toEqual([{ extract_level: 'browse' }])
  })

  it('<~ is similar_to under infer.default_model; NULL gives NULL', async () => {
    const { rows } = await db.query<{ op: number; fn: number; sim: number; n: number | null }>(
      `select 'Paris' <~ 'France' as op, similar_to('Paris', 'France') as fn,
              infer_similarity('banana', 'France') as sim, NULL::text <~ 'France' as n`,
    )
    expect(rows[0]!.op).toBe(rows[0]!.fn)
    expect(rows[0]!.sim).toBeCloseTo(ref.similarToTokens('banana', 'France'), 5)
    expect(rows[0]!.n).toBeNull()
  })

  it('@> is implies() under infer.default_model, and core @> operators still resolve', async () => {
    const pairs = [
      ['France', 'Paris'],
      ['France', 'speak'],
      ['Japan', 'banana'],
    ]
    for (const [s, o] of pairs) {
      const { rows } = await db.query<{ op: boolean; fn: boolean }>(
        `select '${s}' @> '${o}' as op, implies('${s}', '${o}') as fn`,
      )
      expect(rows[0]!.op).toBe(rows[0]!.fn)
    }
    expect(
      (await db.query("select 'France' @> 'speak' as x, 'France'::text @> 'speak'::text as y"))
        .rows,
    ).toEqual([{ x: true, y: true }])
    const { rows } = await db.query(
      `select '{1,2}'::int[] @> '{1}' as arr, '{"a":1}'::jsonb @> '{}' as j,
              int4range(1, 5) @> 3 as r, 'a & b'::tsquery @> 'a'::tsquery as q`,
    )
    expect(rows).toEqual([{ arr: true, j: true, r: true, q: true }])
  })

  it('similar_to_many equals similar_to per candidate, in the array shape, NULLs kept', async () => {
    const cands = ['Paris', null, 'banana', 'Germany', 'euro']
    const { rows } = await db.query<{ s: (number | null)[] }>(
      "select similar_to_many($1::text[], 'France') as s",
      [cands],
    )
    const want = await Promise.all(
      cands.map(async (c) =>
        c === null
          ? null
          : (await db.query<{ s: number }>("select similar_to($1, 'France') as s", [c])).rows[0]!.s,
      ),
    )
    expect(rows[0]!.s).toEqual(want)
    // the array's bounds stay, so unnest(...) WITH ORDINALITY lines up
    expect(
      (await db.query("select similar_to_many('[0:1]={Paris,Rome}'::text[], 'France')::text as s"))
        .rows[0],
    ).toMatchObject({ s: expect.stringMatching(/^\[0:1\]=\{/) })
    expect((await db.query("select similar_to_many('{}'::text[], 'France') as s")).rows).toEqual([
      { s: [] },
    ])
    expect((await db.query("select similar_to_many(NULL, 'France') as s")).rows).toEqual([
      { s: null },
    ])
  })

  it('similar_to_many batches hundreds of candidates (past one batch of 256)', async () => {
    const words = ['Paris', 'Rome', 'yen', 'Japan', 'banana', 'Spain', 'speak', 'euro']
    const cands = Array.from({ length: 600 }, (_, i) => words[i % words.length]!)
    const { rows } = await db.query<{ s: number[] }>(
      "select similar_to_many($1::text[], 'Italy') as s",
      [cands],
    )
    const per = new Map<string, number>()
    for (const w of words)
      per.set(
        w,
        (await db.query<{ s: number }>("select similar_to($1, 'Italy') as s", [w])).rows[0]!.s,
      )
    expect(rows[0]!.s).toEqual(cands.map((c) => per.get(c)))
  })

  it('similar_to_many refuses bad input clearly', async () => {
    expect(await sqlError(db, "select similar_to_many(ARRAY['Paris', ''], 'France')")).toEqual({
      code: '22023',
      message: 'candidates[2] must not be empty',
    })
    expect((await sqlError(db, "select similar_to_many(ARRAY['Paris'], NULL)")).code).toBe('22004')
    expect(
      (await sqlError(db, "select similar_to_many(ARRAY[['a','b'],['c','d']], 'France')")).code,
    ).toBe('2202E')
    expect((await sqlError(db, "select similar_to_many(ARRAY['a'], 'France', 'nope')")).code).toBe(
      '42704',
    )
  })

  it("infer_embedding is the mean input embedding of the entity's tokens similar_to compares", async () => {
    const { rows } = await db.query<{ e: number[] }>("select infer_embedding('south africa') as e")
    // the case rule and the mid-sentence space: ' South Africa'
    expect(ref.entityForm('south africa')).toBe(' South Africa')
    const want = ref.entityQuery(' South Africa')
    expect(rows[0]!.e).toHaveLength(ref.hidden)
    rows[0]!.e.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-6))
    expect((await sqlError(db, 'select infer_embedding(NULL)')).code).toBe('22004')
    expect((await sqlError(db, "select infer_embedding('')")).code).toBe('22023')
  })

  it('the default operator class is infer_text_ops; text_infer_ops still works by name', async () => {
    await db.exec(`create table docs (body text);
      insert into docs values ('Paris'), ('Rome'), ('banana');
      create index docs_a on docs using infer (body) with (model = 'q');
      create index docs_b on docs using infer (body text_infer_ops) with (model = 'q')`)
    const { rows } = await db.query(
      `select c.relname, o.opcname from pg_index i join pg_class c on c.oid = i.indexrelid
       join pg_opclass o on o.oid = i.indclass[0] where c.relname like 'docs_%' order by 1`,
    )
    expect(rows).toEqual([
      { relname: 'docs_a', opcname: 'infer_text_ops' },
      { relname: 'docs_b', opcname: 'text_infer_ops' },
    ])
  })

  it('local sources stay inside infer.data_directory or the allowed host directories', async () => {
    expect((await sqlError(db, "select infer_create_model('x', '../../etc')")).code).toBe('42501')
    expect((await sqlError(db, "select infer_create_model('x', '/etc')")).code).toBe('42501')
  })
})
