// A WebAssembly trap inside a statement (host/trap-guard.ts). PGlite drops
// any exception from its protocol loop that is not its own longjmp signal, so
// without the guard a trapped statement "succeeds" half-run, its
// transaction stays open, and error_context_stack keeps a frame that no
// longer exists; the next parameterized statement turns that into a cycle,
// and the next message Postgres reports loops forever in errfinish (seen in
// CI: a pg_trgm selectivity estimate trapped, a commit warning then spun).
//
// The trap is simulated by putting a throwing function in the table slot of
// pg_infer's tokenize hook, so infer_tokenize() traps inside the backend.
import { PGlite } from '@electric-sql/pglite'
import { readFileSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { testPgInfer } from '../helpers/db.js'
import { QWEN_FIXTURE } from '../helpers/paths.js'

const tokenizerJson = readFileSync(`${QWEN_FIXTURE}/tokenizer.json`, 'utf8')

interface EmscriptenModule {
  HEAPU8: Uint8Array
  ENV: Record<string, string>
  addFunction(fn: (...args: number[]) => number, sig: string): number
  removeFunction(index: number): void
  _error_context_stack: number
}

let db: PGlite
let mod: EmscriptenModule

/** Makes the next call of pg_infer's tokenize hook throw `error` inside the backend. */
function trapInTokenizeHook(error: unknown): void {
  const index = Number(mod.ENV.PGLITE_INFER_HOST!.replace(/^pgi2:/, '').split(',')[0])
  mod.removeFunction(index)
  const again = mod.addFunction(() => {
    throw error
  }, 'iiiiii')
  expect(again).toBe(index) // the freed slot is reused: C calls the thrower
}

const errorContextStack = () => new Uint32Array(mod.HEAPU8.buffer)[mod._error_context_stack >>> 2]

beforeEach(async () => {
  db = await PGlite.create({ extensions: { infer: testPgInfer() } })
  await db.exec('CREATE EXTENSION pg_infer')
  mod = (db as unknown as { mod: EmscriptenModule }).mod
})
afterEach(async () => {
  await db.close()
})

describe('a trap inside a statement', () => {
  it('is an XX000 error naming the trap, not a statement that silently half ran', async () => {
    trapInTokenizeHook(new WebAssembly.RuntimeError('null function or function signature mismatch'))
    const err = await db
      .query('select infer_tokenize($1, $2) as ids', ['hello', tokenizerJson])
      .then(
        () => undefined,
        (e: { code?: string; message: string; hint?: string }) => e,
      )
    expect(err?.code).toBe('XX000')
    expect(err?.message).toBe(
      'the statement stopped on a WebAssembly trap and was rolled back: ' +
        'RuntimeError: null function or function signature mismatch',
    )
    expect(err?.hint).toMatch(/session is still usable/)
  })

  it('rolls the transaction back and leaves no stale error context behind', async () => {
    await db.exec('create table t (x int)')
    await db.exec('begin')
    await db.query('insert into t values ($1)', [1])
    trapInTokenizeHook(new WebAssembly.RuntimeError('memory access out of bounds'))
    await expect(
      db.query('select infer_tokenize($1, $2)', ['hello', tokenizerJson]),
    ).rejects.toMatchObject({ code: 'XX000' })
    expect(errorContextStack()).toBe(0)
    // the failed statement aborted the transaction block, as any error does
    await expect(db.query('select $1::int', [1])).rejects.toMatchObject({ code: '25P02' })
    await db.exec('rollback')
    expect(db.isInTransaction()).toBe(false)
    expect((await db.query('select count(*)::int as n from t')).rows).toEqual([{ n: 0 }])
  })

  it('keeps the session working: parameterized statements and reported warnings after it', async () => {
    trapInTokenizeHook(new TypeError('a host hook threw'))
    await expect(
      db.query('select infer_tokenize($1, $2)', ['hello', tokenizerJson]),
    ).rejects.toMatchObject({ code: 'XX000', message: expect.stringContaining('TypeError') })
    // What hung before the guard: a parameterized statement after the trap
    // (its error-context frame pushed onto the stale one, making a cycle),
    // then any message Postgres reports.
    for (let i = 0; i < 3; i++)
      expect((await db.query<{ v: number }>('select $1::int + 1 as v', [i])).rows).toEqual([
        { v: i + 1 },
      ])
    const notices: string[] = []
    await db.query("do $$ begin raise warning 'still here'; end $$", [], {
      onNotice: (n) => notices.push(n.message ?? ''),
    })
    expect(notices).toEqual(['still here'])
    await expect(db.query('select 1/$1::int', [0])).rejects.toMatchObject({ code: '22012' })
    expect(errorContextStack()).toBe(0)
  })

  it('reports a trap in a simple-protocol statement (db.exec) the same way', async () => {
    trapInTokenizeHook(new WebAssembly.RuntimeError('unreachable'))
    await expect(
      db.exec(`select infer_tokenize('hello', '${tokenizerJson.replaceAll("'", "''")}')`),
    ).rejects.toMatchObject({ code: 'XX000', message: expect.stringContaining('unreachable') })
    expect(errorContextStack()).toBe(0)
  })

  it("leaves the runtime's own unwinding alone: SQL errors keep their SQLSTATE", async () => {
    await expect(db.query('select 1/0')).rejects.toMatchObject({ code: '22012' })
    await expect(db.query("select infer_tokenize('x', 'not json')")).rejects.toMatchObject({
      code: expect.not.stringMatching(/^XX000$/),
    })
    expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  })
})
