import type { PGlite } from '@electric-sql/pglite'
import { Tokenizer } from '@huggingface/tokenizers'
import { readFileSync } from 'node:fs'
import { HostError } from 'pglite-infer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE, STORIES_FIXTURE } from '../helpers/paths.js'

const qwenTokenizer = readFileSync(`${QWEN_FIXTURE}/tokenizer.json`, 'utf8')
const storiesTokenizer = readFileSync(`${STORIES_FIXTURE}/tokenizer.json`, 'utf8')
// Token ids that HuggingFace transformers produced for these prompts.
const reference = JSON.parse(readFileSync(`${QWEN_FIXTURE}/reference.json`, 'utf8')) as {
  prompts: { prompt: string; input_ids: number[] }[]
}

async function tokenize(db: PGlite, text: string, json: string, special = false) {
  const { rows } = await db.query<{ ids: number[] }>('select infer_tokenize($1, $2, $3) as ids', [
    text,
    json,
    special,
  ])
  return rows[0].ids
}

describe('host round trip: infer_tokenize', () => {
  let db: PGlite
  beforeAll(async () => {
    db = await openDb()
  })
  afterAll(async () => {
    await db.close()
  })

  it.each(reference.prompts.map((p) => [p.prompt, p.input_ids] as const))(
    'tokenizes %j exactly as transformers does',
    async (prompt, ids) => {
      expect(await tokenize(db, prompt, qwenTokenizer)).toEqual(ids)
    },
  )

  it('carries multi-byte UTF-8 both ways', async () => {
    const text = 'The capital of Colombia is Bogotá — 東京 😀'
    const direct = new Tokenizer(JSON.parse(qwenTokenizer), {}).encode(text).ids
    expect(await tokenize(db, text, qwenTokenizer)).toEqual(direct)
    expect(direct.length).toBeGreaterThan(10)
  })

  it('adds the special tokens of a Llama tokenizer when asked', async () => {
    const plain = await tokenize(db, 'Once upon a time', storiesTokenizer)
    const withBos = await tokenize(db, 'Once upon a time', storiesTokenizer, true)
    expect(withBos).toEqual([1, ...plain])
  })

  it('returns an empty array for empty text', async () => {
    expect(await tokenize(db, '', qwenTokenizer)).toEqual([])
  })

  it('handles 200 KB of text', async () => {
    const text = 'The capital of France is Paris. '.repeat(6400)
    const ids = await tokenize(db, text, qwenTokenizer)
    const direct = new Tokenizer(JSON.parse(qwenTokenizer), {}).encode(text).ids
    expect(ids).toEqual(direct)
    expect(ids.length).toBeGreaterThan(6400 * 6)
  })

  it('is NULL on NULL input (STRICT)', async () => {
    const { rows } = await db.query('select infer_tokenize(NULL, $1) as ids', [qwenTokenizer])
    expect(rows).toEqual([{ ids: null }])
  })
})

describe('errors cross the bridge as SQL errors', () => {
  let db: PGlite
  beforeAll(async () => {
    db = await openDb({
      host: {
        tokenize(_json, text) {
          if (text === 'typed') throw new HostError('the host refused this text', '22P02')
          if (text === 'plain') throw new Error('the host fell over')
          if (text === 'thrown-string') throw 'not an Error object'
          return [text.length]
        },
      },
    })
  })
  afterAll(async () => {
    await db.close()
  })

  it('a host exception becomes ERROR 38000 with its message', async () => {
    const err = await sqlError(db, "select infer_tokenize('plain', '{}')")
    expect(err).toEqual({
      code: '38000',
      message: 'pg_infer host "tokenize" failed: the host fell over',
    })
  })

  it('a HostError keeps its SQLSTATE', async () => {
    const err = await sqlError(db, "select infer_tokenize('typed', '{}')")
    expect(err).toEqual({
      code: '22P02',
      message: 'pg_infer host "tokenize" failed: the host refused this text',
    })
  })

  it('a thrown non-Error value is reported too', async () => {
    const err = await sqlError(db, "select infer_tokenize('thrown-string', '{}')")
    expect(err.code).toBe('38000')
    expect(err.message).toContain('not an Error object')
  })

  it('the session keeps working after host errors, in and out of transactions', async () => {
    expect((await db.query("select infer_tokenize('abc', '{}') as ids")).rows).toEqual([
      { ids: [3] },
    ])
    await db.exec('BEGIN')
    await expect(db.query("select infer_tokenize('plain', '{}')")).rejects.toThrow()
    await db.exec('ROLLBACK')
    expect((await db.query("select infer_tokenize('abcd', '{}') as ids")).rows).toEqual([
      { ids: [4] },
    ])
  })

  it('ereport(ERROR) from C is recoverable', async () => {
    const err = await sqlError(db, "select infer_tokenize('x', '')")
    expect(err).toEqual({ code: '22023', message: 'tokenizer_json is empty' })
    const again = await sqlError(db, "select infer_tokenize('y', '')")
    expect(again.code).toBe('22023')
    expect((await db.query('select 40 + 2 as n')).rows).toEqual([{ n: 42 }])
  })
})

describe('the default host rejects what is not a tokenizer', () => {
  let db: PGlite
  beforeAll(async () => {
    db = await openDb()
  })
  afterAll(async () => {
    await db.close()
  })

  it('invalid JSON is 22023 and names the argument', async () => {
    const err = await sqlError(db, "select infer_tokenize('x', '{oops')")
    expect(err.code).toBe('22023')
    expect(err.message).toMatch(
      /^pg_infer host "tokenize" failed: tokenizer_json is not valid JSON/,
    )
  })

  it('JSON that is not a tokenizer is 22023', async () => {
    const err = await sqlError(db, 'select infer_tokenize($1, $2)', ['x', '{"a": 1}'])
    expect(err).toEqual({
      code: '22023',
      message:
        'pg_infer host "tokenize" failed: tokenizer_json has no "model" section: it is not a HuggingFace tokenizer.json',
    })
    expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  })
})
