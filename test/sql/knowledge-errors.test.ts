// Every bad input to the knowledge functions is a clear SQL error with a
// proper SQLSTATE, and the same session keeps working after it.
import type { PGlite } from '@electric-sql/pglite'
import { cpSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

let db: PGlite
let vindex: string

beforeAll(async () => {
  vindex = await fixtureVindex('f16')
  db = await openDb()
  await db.query("select infer_create_model('q', $1)", [vindex])
})
afterAll(async () => {
  await db?.close()
})
afterEach(async () => {
  // the backend survived: a plain query and a real one both work
  expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  expect((await db.query("select count(*)::int as n from walk('France', 3, 'q')")).rows).toEqual([
    { n: 3 },
  ])
})

const cases: [string, string, unknown[], string, RegExp][] = [
  [
    'unknown model',
    "select * from walk('x', 5, 'nope')",
    [],
    '42704',
    /model "nope" does not exist/,
  ],
  [
    'default model unset',
    "select * from describe('France')",
    [],
    '22023',
    /no model given and infer\.default_model is not set/,
  ],
  ['NULL prompt', "select * from walk(NULL, 5, 'q')", [], '22004', /prompt must not be NULL/],
  ['NULL entity', "select * from describe(NULL, 'q')", [], '22004', /entity must not be NULL/],
  [
    'NULL similar_to argument',
    "select similar_to('a', NULL, 'q')",
    [],
    '22004',
    /b must not be NULL/,
  ],
  [
    'NULL implies object',
    "select implies('France', NULL, 'q')",
    [],
    '22004',
    /object must not be NULL/,
  ],
  ['empty prompt', "select * from walk('', 5, 'q')", [], '22023', /prompt must not be empty/],
  ['empty entity', "select * from describe('', 'q')", [], '22023', /entity must not be empty/],
  [
    'empty implies object',
    "select implies('France', '  ', 'q')",
    [],
    '22023',
    /object must not be empty/,
  ],
  [
    '1 MB of text',
    "select * from describe(repeat('France ', 150000), 'q')",
    [],
    '54000',
    /entity is too long \(1050000 bytes; at most 65536\)/,
  ],
  [
    'top 0',
    "select * from walk('France', 0, 'q')",
    [],
    '22023',
    /top must be between 1 and 10000, not 0/,
  ],
  ['top negative', "select * from walk('France', -3, 'q')", [], '22023', /top must be between 1/],
  [
    'top huge',
    "select * from walk('France', 2000000000, 'q')",
    [],
    '22023',
    /top must be between 1/,
  ],
  [
    'negative threshold',
    "select * from describe('France', 'q', -0.5)",
    [],
    '22023',
    /threshold must be >= 0/,
  ],
  [
    'NaN threshold',
    "select * from describe('France', 'q', 'NaN')",
    [],
    '22023',
    /threshold must be >= 0/,
  ],
  [
    'source escaping infer.data_directory',
    "select infer_create_model('esc', '../../etc')",
    [],
    '42501',
    /escapes infer\.data_directory/,
  ],
  [
    'model name with quotes',
    `select infer_create_model('it''s"', 'x')`,
    [],
    '42602',
    /invalid model name/,
  ],
  [
    'model name of 200 characters',
    'select infer_create_model(repeat($1, 200), $2)',
    ['m', '/x'],
    '42622',
    /model name is too long \(200 bytes; at most 63\)/,
  ],
  [
    'hostile name in a lookup',
    `select * from walk('x', 1, '../q')`,
    [],
    '42602',
    /invalid model name/,
  ],
  [
    'missing source directory',
    "select infer_create_model('m1', $1)",
    [`${tmpdir()}/no/such/dir.vindex`],
    '58P01',
    /no vindex directory/,
  ],
  [
    'source outside the allowed host directories',
    "select infer_create_model('m1', '/no/such/dir.vindex')",
    [],
    '42501',
    /outside the host directories this application allows/,
  ],
  ['empty source', "select infer_create_model('m1', '')", [], '22023', /source must not be empty/],
  [
    'bad extract level',
    "select infer_create_model('m1', '/x', 'everything')",
    [],
    '22023',
    /invalid extract_level/,
  ],
  [
    'duplicate model',
    "select infer_create_model('q', '/x')",
    [],
    '42710',
    /model "q" already exists/,
  ],
  [
    'drop unknown model',
    "select infer_drop_model('nope')",
    [],
    '42704',
    /model "nope" does not exist/,
  ],
  [
    'hf:// with auto_download off',
    "set infer.auto_download = off; select infer_create_model('h', 'hf://org/model')",
    [],
    '55000',
    /infer\.auto_download is off/,
  ],
  [
    'data_directory with ..',
    "set infer.data_directory = 'a/../..'",
    [],
    '22023',
    /invalid value for parameter "infer\.data_directory"/,
  ],
  ['invalid walk_embed_mode', "set infer.walk_embed_mode = 'first'", [], '22023', /invalid value/],
  [
    'max_memory above the WASM heap',
    "set infer.max_memory = '4GB'",
    [],
    '22023',
    /outside the valid range/,
  ],
]

describe('bad input to knowledge functions', () => {
  it.each(cases)('%s', async (_what, sql, params, code, message) => {
    const err =
      sql.includes(';') && params.length === 0
        ? await execError(sql)
        : await sqlError(db, sql, params)
    expect(err.code).toBe(code)
    expect(err.message).toMatch(message)
    await db.exec('reset all')
  })

  it('text whose tokens are all unknown', async () => {
    const dir = join(scratchDir('unk'), 'wordpiece.vindex')
    cpSync(vindex, dir, { recursive: true })
    const vocab: Record<string, number> = { '[UNK]': 0, France: 1, Paris: 2 }
    writeFileSync(
      join(dir, 'tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        model: {
          type: 'WordPiece',
          unk_token: '[UNK]',
          continuing_subword_prefix: '##',
          max_input_chars_per_word: 100,
          vocab,
        },
      }),
    )
    // an edited tokenizer no longer matches the checksum the extractor wrote
    await db.exec('set infer.verify_checksums = off')
    await db.query("select infer_create_model('wp', $1)", [dir])
    await db.exec('reset infer.verify_checksums')
    expect(
      (await db.query("select count(*)::int as n from describe('France', 'wp')")).rows,
    ).toEqual([{ n: expect.any(Number) }])
    const err = await sqlError(db, "select * from describe('zzz qqq', 'wp')")
    expect(err.code).toBe('22023')
    expect(err.message).toMatch(/only unknown tokens under model "wp"/)
  })

  it('a truncated vindex', async () => {
    const dir = join(scratchDir('trunc'), 'model.vindex')
    cpSync(vindex, dir, { recursive: true })
    const size = readFileSync(join(dir, 'gate_vectors.bin')).length
    truncateSync(join(dir, 'gate_vectors.bin'), size - 100)
    const err = await sqlError(db, "select infer_create_model('t', $1)", [dir])
    expect(err.code).toBe('XX001')
    expect(err.message).toContain('gate_vectors.bin')
    expect(err.message).toMatch(/truncated/)
    expect(err.message).toContain(String(size))
    expect(
      (await db.query("select count(*)::int as n from infer.models where name = 't'")).rows,
    ).toEqual([{ n: 0 }])
  })

  it('a vindex with a bad down_meta magic', async () => {
    const dir = join(scratchDir('magic'), 'model.vindex')
    cpSync(vindex, dir, { recursive: true })
    const bytes = readFileSync(join(dir, 'down_meta.bin'))
    bytes[0] = 0
    writeFileSync(join(dir, 'down_meta.bin'), bytes)
    const err = await sqlError(db, "select infer_create_model('bm', $1)", [dir])
    expect(err.code).toBe('XX001')
    expect(err.message).toMatch(/down_meta\.bin.*magic/)
  })

  it('a level the vindex does not have', async () => {
    const err = await sqlError(db, "select infer_create_model('inf', $1, 'inference')", [vindex])
    expect(err.code).toBe('22023')
    expect(err.message).toMatch(/extract level browse.*--level inference/)
  })
})

async function execError(sql: string): Promise<{ code: string; message: string }> {
  try {
    await db.exec(sql)
  } catch (e) {
    const err = e as { code?: string; message: string }
    return { code: err.code ?? '', message: err.message }
  }
  throw new Error(`expected an error from: ${sql}`)
}
