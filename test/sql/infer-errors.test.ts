// Bad inputs to infer() and forward-mode walk() are clear SQL errors with
// proper SQLSTATEs, and the session keeps working after each.
import type { PGlite } from '@electric-sql/pglite'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { fixtureVindex } from '../helpers/vindex.js'

let db: PGlite

beforeAll(async () => {
  db = await openDb()
  await db.query("select infer_create_model('q', $1, 'inference')", [
    await fixtureVindex('f32', 'inference'),
  ])
  await db.query("select infer_create_model('b', $1)", [await fixtureVindex('f32', 'inference')])
})
afterAll(async () => {
  await db?.close()
})
afterEach(async () => {
  await db.exec('reset infer.max_memory')
  expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  const { rows } = await db.query<{ token: string }>(
    "select token from infer('The capital of France is', 1, 'q')",
  )
  expect(rows).toEqual([{ token: ' Paris' }])
})

// about 5 tokens each: 30 of them are far past the fixture's 128 positions
const LONG = Array.from({ length: 30 }, () => 'The capital of France is Paris.').join(' ')

const cases: [string, string, string, RegExp][] = [
  [
    'infer on a browse-level model',
    "select * from infer('France', 5, 'b')",
    '55000',
    /needs model "b" at extract level inference, but it is registered at level browse/,
  ],
  [
    'forward walk on a browse-level model',
    "select * from walk('France', 5, 'b', 'forward')",
    '55000',
    /extract level inference/,
  ],
  ['NULL prompt', "select * from infer(NULL, 5, 'q')", '22004', /prompt must not be NULL/],
  ['NULL top', "select * from infer('France', NULL, 'q')", '22004', /top must not be NULL/],
  ['empty prompt', "select * from infer('', 5, 'q')", '22023', /prompt must not be empty/],
  [
    'empty prompt, forward walk',
    "select * from walk('', 5, 'q', 'forward')",
    '22023',
    /prompt must not be empty/,
  ],
  [
    'top 0',
    "select * from infer('France', 0, 'q')",
    '22023',
    /top must be between 1 and the vocabulary size 2595, not 0/,
  ],
  ['top -3', "select * from infer('France', -3, 'q')", '22023', /not -3/],
  ['top past the vocabulary', "select * from infer('France', 2596, 'q')", '22023', /not 2596/],
  ['unknown walk mode', "select * from walk('France', 5, 'q', 'dream')", '22023', /walk mode/],
  [
    'unknown walk band',
    "select * from walk('France', 5, 'q', 'forward', 'middle')",
    '22023',
    /invalid band "middle"/,
  ],
  [
    'prompt longer than the context',
    `select * from infer('${LONG}', 5, 'q')`,
    '54000',
    /the prompt needs \d{3} positions but model "q" has a context of 128/,
  ],
]

it.each(cases)('%s', async (_what, sql, code, message) => {
  const err = await sqlError(db, sql)
  expect(err.code).toBe(code)
  expect(err.message).toMatch(message)
})

it('the browse-level error hints at re-extracting', async () => {
  try {
    await db.query("select * from infer('France', 5, 'b')")
    expect.unreachable()
  } catch (e) {
    expect((e as { hint?: string }).hint).toMatch(
      /--level inference .* extract_level => 'inference'/,
    )
  }
})

it('a run that does not fit infer.max_memory names both numbers', async () => {
  // the two models hold about 38.4 MB; 39 MB leaves too little for ~90 positions
  await db.exec('set infer.max_memory = 39')
  const prompt = Array.from({ length: 18 }, () => 'The capital of France is').join(' ')
  const err = await sqlError(db, 'select * from infer($1, 5, $2)', [prompt, 'q'])
  expect(err.code).toBe('54000')
  expect(err.message).toMatch(
    /a run of \d+ positions on model "q" needs \d+ kB for its KV cache and activations, but infer\.max_memory \(39 MB\) leaves \d+ kB/,
  )
})
