// Issue 13, "knowledge you can trust", asserted on samples of the fixture:
// signatures (definition version 3) and the refusal of older column indexes,
// the case rule, whole punctuated answers, abstention under
// infer.min_confidence, several templates per relation and their scoring.
// The full measurements are `npm run eval` (docs/evaluation.md).
import type { PGlite } from '@electric-sql/pglite'
import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, openPersistent, sqlError } from '../helpers/db.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'

const TEMPLATES: Record<string, string> = {
  capital: 'The capital of {} is',
  currency: 'The currency of {} is the',
  language: 'People in {} speak',
  continent: '{} is a country in',
}

interface EdgeRow {
  relation: string
  target: string
  confidence: number
  layer: number
}

let db: PGlite

beforeAll(async () => {
  db = await openDb()
  await db.query("select infer_create_model('m', $1, 'inference')", [
    await fixtureVindex('f32', 'inference'),
  ])
  await db.exec("set infer.default_model = 'm'")
  for (const [r, t] of Object.entries(TEMPLATES))
    await db.query('select infer_add_relation($1, $2, $3)', ['m', r, t])
}, 120_000)
afterAll(async () => {
  await db?.close()
})

/** describe()'s predicted rows: those whose relation has a template, before any feature edge. */
async function predicted(subject: string): Promise<EdgeRow[]> {
  const { rows } = await db.query<EdgeRow>('select * from describe($1)', [subject])
  const out: EdgeRow[] = []
  for (const r of rows) {
    if (!(r.relation in TEMPLATES) || out.some((o) => o.relation >= r.relation)) break
    out.push(r)
  }
  return out
}

/**
 * The greedy answer of a prompt under describe()'s stop rule, computed here
 * from infer()'s top token step by step: stop before EOS ('<|endoftext|>'),
 * a line break, or a later token under probability 0.5; then cut a final
 * '.', unless the answer's last word holds another period.
 */
async function greedyAnswer(prompt: string): Promise<string> {
  let text = prompt
  let answer = ''
  for (let i = 0; i < 10; i++) {
    const { rows } = await db.query<{ token: string; probability: number }>(
      'select token, probability from infer($1, 1)',
      [text],
    )
    const { token, probability } = rows[0]!
    if (token === '<|endoftext|>' || /[\r\n]/.test(token)) break
    if (i > 0 && probability < 0.5) break
    if (i === 0 && token.trim() === '') break
    answer += token
    text += token
  }
  answer = answer.trim()
  if (/[.!?]$/.test(answer)) {
    const last = answer.slice(answer.lastIndexOf(' ') + 1)
    if (!(answer.endsWith('.') && last.slice(0, -1).includes('.'))) answer = answer.slice(0, -1)
  }
  return answer
}

describe('similarity: signature definition version 3', () => {
  it('similar_to ranks same-continent countries above cross-continent ones on a sample', async () => {
    const sample: [string, string][] = [
      ['France', 'Europe'],
      ['Germany', 'Europe'],
      ['Italy', 'Europe'],
      ['Poland', 'Europe'],
      ['Kenya', 'Africa'],
      ['Nigeria', 'Africa'],
      ['Ghana', 'Africa'],
      ['Senegal', 'Africa'],
      ['Japan', 'Asia'],
      ['Vietnam', 'Asia'],
      ['Thailand', 'Asia'],
      ['Mongolia', 'Asia'],
    ]
    const same: number[] = []
    const cross: number[] = []
    for (let i = 0; i < sample.length; i++)
      for (let j = i + 1; j < sample.length; j++) {
        const { rows } = await db.query<{ s: number }>('select similar_to($1, $2) s', [
          sample[i]![0],
          sample[j]![0],
        ])
        ;(sample[i]![1] === sample[j]![1] ? same : cross).push(rows[0]!.s)
      }
    let wins = 0
    for (const a of same) for (const b of cross) wins += a > b ? 1 : a === b ? 0.5 : 0
    // the full evaluation (197 countries) measures 0.912 (held-out half: 0.923)
    expect(wins / (same.length * cross.length)).toBeGreaterThan(0.8)
  })

  it('similar_to weighs continuation tokens by their step confidence, <~> by their path confidence', async () => {
    const [a, b] = ['France', 'Peru']
    const sig = async (t: string) =>
      (
        await db.query<{ feature: number; score: number }>(
          'select feature, score from infer_signatures($1)',
          [[t]],
        )
      ).rows
    const sa = await sig(a)
    const sb = await sig(b)
    // the continuation's path probability falls well below 1: the two weightings differ
    expect(sa.some((r) => r.score < 0.5)).toBe(true)
    // each of b's tokens: its specificity weight and its dots with a's tokens; a's weights
    const { rows: dots } = await db.query<{ token: number; weight: number; dots: number[] }>(
      'select token, weight, dots from infer_signature_dots($1, $2)',
      [a, sb.map((r) => r.feature)],
    )
    const { rows: own } = await db.query<{ token: number; weight: number }>(
      'select token, weight from infer_signature_dots($1, $2)',
      [a, sa.map((r) => r.feature)],
    )
    const late = (step: boolean) => {
      const conf = (rs: typeof sa) =>
        rs.map((r, i) => (step ? Math.min(r.score / (i ? rs[i - 1]!.score : 1), 1) : r.score))
      const ca = conf(sa)
      const cb = conf(sb)
      const wa = own.map((r, i) => ca[i]! * r.weight)
      const wb = dots.map((r, j) => cb[j]! * r.weight)
      const bestA = sa.map((_, i) => Math.max(...dots.map((d) => d.dots[i]!)))
      const bestB = dots.map((d) => Math.max(...d.dots))
      const mean = (best: number[], w: number[]) =>
        best.reduce((x, v, i) => x + v * w[i]!, 0) / w.reduce((x, v) => x + v, 0)
      return (mean(bestA, wa) + mean(bestB, wb)) / 2
    }
    const { rows } = await db.query<{ s: number; d: number }>(
      'select similar_to($1, $2) s, infer_distance($1, $2) d',
      [a, b],
    )
    expect(rows[0]!.s).toBeCloseTo(late(true), 5)
    expect(rows[0]!.d).toBeCloseTo(1 - late(false), 5)
    expect(Math.abs(rows[0]!.s - (1 - rows[0]!.d))).toBeGreaterThan(0.01)
  })

  it('a text and itself are at distance 0, and the case rule makes case variants one text', async () => {
    const { rows } = await db.query<{ a: number; b: number; c: number }>(
      `select infer_distance('France', 'France') a, similar_to('france', 'France') b,
              similar_to('FRANCE', 'France') c`,
    )
    expect(Math.abs(rows[0]!.a)).toBeLessThan(1e-6)
    expect(rows[0]!.b).toBeCloseTo(1, 6)
    expect(rows[0]!.c).toBeCloseTo(1, 6)
  })

  it('<~> through the column index equals the sorted sequential scan, and finds the sentences of a country', async () => {
    await db.exec(`create table docs (id int primary key, body text);
      insert into docs values
        (1, 'The capital of France is Paris.'), (2, 'People in France speak French.'),
        (3, 'Japan uses the yen.'), (4, 'Monday comes after Sunday.'),
        (5, 'Kenya is a country in Africa.'), (6, 'The currency of Peru is the sol.'),
        (7, NULL), (8, 'France lies in Europe.'), (9, 'Red and blue make purple.');
      create index docs_body on docs using infer (body) with (model = 'm')`)
    for (const q of ['France', 'yen', 'capital of France', 'Africa']) {
      const sql = 'select id, body <~> $1 as d from docs order by body <~> $1 limit 20'
      // a table this small would be sorted: make the planner take the index
      await db.exec('set enable_seqscan = off')
      const plan = (await db.query<{ 'QUERY PLAN': string }>('explain ' + sql, [q])).rows
      expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toContain('Index Scan')
      const viaIndex = (await db.query<{ id: number; d: number }>(sql, [q])).rows
      await db.exec('reset enable_seqscan; set enable_indexscan = off')
      const viaSort = (await db.query<{ id: number; d: number }>(sql, [q])).rows
      await db.exec('reset enable_indexscan')
      expect(viaIndex).toEqual(viaSort)
    }
    const top3 = (
      await db.query<{ id: number }>("select id from docs order by body <~> 'France' limit 3")
    ).rows.map((r) => r.id)
    expect(top3.sort()).toEqual([1, 2, 8])
  })

  it('refuses a column index of signature definition version 2, with a REINDEX hint', async () => {
    const dir = join(scratchDir('sigversion'), 'data')
    let own = await openPersistent(dir)
    await own.query("select infer_create_model('c', $1)", [await fixtureVindex('f16')])
    await own.exec(`set infer.default_model = 'c';
      create table t (body text); insert into t values ('Paris'), ('banana');
      create index t_body on t using infer (body) with (model = 'c')`)
    const path = (await own.query<{ p: string }>("select pg_relation_filepath('t_body') p"))
      .rows[0]!.p
    await own.close()
    // block 0: page header (24 bytes), then magic (4) and version (4)
    const fd = openSync(join(dir, path), 'r+')
    const word = Buffer.alloc(4)
    readSync(fd, word, 0, 4, 28)
    expect(word.readUInt32LE(0)).toBe(3)
    word.writeUInt32LE(2, 0)
    writeSync(fd, word, 0, 4, 28)
    closeSync(fd)
    own = await openPersistent(dir)
    // the patched page's checksum no longer matches: read it anyway
    await own.exec(
      "set ignore_checksum_failure = on; set infer.default_model = 'c'; set enable_seqscan = off",
    )
    const err = await sqlError(own, "select body from t order by body <~> 'France' limit 1")
    expect(err.code).toBe('55000')
    expect(err.message).toBe(
      'index "t_body" holds signatures of definition version 2; this pg_infer compares signatures of version 3',
    )
    await own.exec('reindex index t_body')
    const sql = "select body, body <~> 'France' as d from t order by body <~> 'France' limit 2"
    const viaIndex = (await own.query(sql)).rows
    await own.exec('reset enable_seqscan; set enable_indexscan = off')
    expect(viaIndex).toEqual((await own.query(sql)).rows)
    await own.close()
  }, 120_000)
})

describe('answers', () => {
  it('punctuated, multi-token capitals come out whole', async () => {
    for (const [s, capital] of [
      ['United States', 'Washington D.C.'],
      ['Haiti', 'Port-au-Prince'],
      ['Chad', "N'Djamena"],
      ['Yemen', "Sana'a"],
      ['San Marino', 'City of San Marino'],
    ]) {
      const rows = await predicted(s!)
      expect([s, rows.find((r) => r.relation === 'capital')?.target]).toEqual([s, capital])
    }
  })

  it("infer_answer applies describe()'s stop rule to infer()'s greedy tokens", async () => {
    for (const prompt of [
      'The capital of United States is',
      'The capital of Haiti is',
      'The capital of France is',
      'Germany is a country in',
      'The currency of Kelmaria is the',
    ]) {
      const { rows } = await db.query<{ answer: string }>('select answer from infer_answer($1)', [
        prompt,
      ])
      expect([prompt, rows[0]!.answer]).toEqual([prompt, await greedyAnswer(prompt)])
    }
  })

  it("'france', 'FRANCE' and 'France' give the same rows (the case rule)", async () => {
    const want = await db.query('select * from describe($1)', ['France'])
    for (const v of ['france', 'FRANCE'])
      expect((await db.query('select * from describe($1)', [v])).rows).toEqual(want.rows)
    expect(
      (await db.query<{ v: boolean }>("select implies('paris', 'FRANCE') is not null as v")).rows,
    ).toEqual([{ v: true }])
  })
})

describe('confidence and abstention', () => {
  it('infer.min_confidence defaults to 0.5 and takes 0 to 1', async () => {
    expect(
      (await db.query<{ v: string }>("select current_setting('infer.min_confidence') v")).rows,
    ).toEqual([{ v: '0.5' }])
    expect((await sqlError(db, 'set infer.min_confidence = 1.5')).code).toBe('22023')
  })

  it('subjects the model cannot know get no answer above the floor; known ones keep theirs', async () => {
    for (const s of ['Zubrovia', 'Kelmaria', 'banana']) {
      expect([s, await predicted(s)]).toEqual([s, []])
      for (const o of ['Paris', 'Africa', 'euro', 'English'])
        expect([
          s,
          o,
          (await db.query<{ v: boolean }>('select implies($1, $2) v', [s, o])).rows[0]!.v,
        ]).toEqual([s, o, false])
    }
    expect((await predicted('France')).map((r) => [r.relation, r.target])).toEqual([
      ['capital', 'Paris'],
      ['continent', 'Europe'],
      ['currency', 'euro'],
      ['language', 'French'],
    ])
    expect((await predicted('France')).every((r) => r.confidence > 0.9)).toBe(true)
    expect((await db.query<{ v: boolean }>("select implies('France', 'Paris') v")).rows[0]!.v).toBe(
      true,
    )
    // with the floor at 0 the model's guesses show, with their low confidence
    await db.exec('set infer.min_confidence = 0')
    const guesses = await predicted('Zubrovia')
    await db.exec('reset infer.min_confidence')
    expect(guesses.map((r) => r.relation)).toEqual(['capital', 'continent', 'currency', 'language'])
    expect(guesses.every((r) => r.confidence < 0.5)).toBe(true)
  })
})

describe('several templates per relation', () => {
  it('infer_add_relation takes an array, infer.templates lists them, and describe() combines them', async () => {
    await db.query('select infer_add_relation($1, $2, $3::text[])', [
      'm',
      'capital',
      ['The capital of {} is', "{}'s capital city is", '{} has its capital in'],
    ])
    const { rows } = await db.query(
      "select relation, template, weight from infer.templates where model = 'm' and relation = 'capital' order by template collate \"C\"",
    )
    expect(rows).toEqual([
      { relation: 'capital', template: 'The capital of {} is', weight: 1 },
      { relation: 'capital', template: '{} has its capital in', weight: 1 },
      { relation: 'capital', template: "{}'s capital city is", weight: 1 },
    ])
    expect((await predicted('Japan')).find((r) => r.relation === 'capital')?.target).toBe('Tokyo')
    // the single-template form replaces them
    await db.query("select infer_add_relation('m', 'capital', 'The capital of {} is')")
    expect(
      (await db.query("select template from infer.templates where relation = 'capital'")).rows,
    ).toEqual([{ template: 'The capital of {} is' }])
  })

  it('infer_score_templates measures precision@1 on facts, keeps and weights the templates that work', async () => {
    const facts = [
      ['France', 'Paris'],
      ['Japan', 'Tokyo'],
      ['Kenya', 'Nairobi'],
      ['Peru', 'Lima'],
      ['Haiti', 'Port-au-Prince'],
      ['Chad', "N'Djamena"],
    ]
    const templates = ['The capital of {} is', '{} is governed from', 'In {}, the capital is']
    await db.exec(
      'create temp table capital_facts (subject text, relation text, object text, template text)',
    )
    for (const t of templates)
      for (const [s, o] of facts)
        await db.query("insert into capital_facts values ($1, 'capital', $2, $3)", [s, o, t])
    // expected precision: each filled template's greedy answer, computed here
    const want = new Map<string, number>()
    for (const t of templates) {
      let right = 0
      for (const [s, o] of facts)
        if ((await greedyAnswer(t.replace('{}', s!))).toLowerCase() === o!.toLowerCase()) right++
      want.set(t, right / facts.length)
    }
    const { rows } = await db.query<{
      relation: string
      template: string
      scored: number
      precision_at_1: number
      weight: number
    }>("select * from infer_score_templates('m', 'capital_facts')")
    expect(rows.map((r) => [r.template, r.scored, r.precision_at_1])).toEqual(
      [...templates]
        .sort((a, b) => {
          const wa = want.get(a)! >= 0.5 ? want.get(a)! : 0
          const wb = want.get(b)! >= 0.5 ? want.get(b)! : 0
          return wb - wa || (a < b ? -1 : 1)
        })
        .map((t) => [t, facts.length, want.get(t)]),
    )
    for (const r of rows) expect(r.weight).toBe(r.precision_at_1 >= 0.5 ? r.precision_at_1 : 0)
    const kept = (
      await db.query<{ template: string; weight: number }>(
        "select template, weight from infer.templates where relation = 'capital' order by template",
      )
    ).rows
    expect(kept).toEqual(
      rows
        .filter((r) => r.weight > 0)
        .map((r) => ({ template: r.template, weight: r.weight }))
        .sort((a, b) => (a.template < b.template ? -1 : 1)),
    )
    expect(want.get('The capital of {} is')).toBe(1)
    await db.query("select infer_add_relation('m', 'capital', 'The capital of {} is')")
  })

  it('a relation whose templates weigh less than 1 in all answers with at most that weight', async () => {
    const capital = async () =>
      (await predicted('France')).find((r) => r.relation === 'capital')!.confidence
    await db.exec('set infer.min_confidence = 0')
    const full = await capital()
    // a scored template keeps its precision as weight: 0.8 means right 8 times in 10
    await db.exec(
      "update infer.relation_templates set weight = 0.8 where model = 'm' and relation = 'capital'",
    )
    const weighted = await capital()
    await db.exec(
      "update infer.relation_templates set weight = 1 where model = 'm' and relation = 'capital'; reset infer.min_confidence",
    )
    expect(full).toBeGreaterThan(0.9)
    expect(weighted).toBeCloseTo(0.8 * full, 12)
  })

  it('refuses bad templates and arguments clearly', async () => {
    expect((await sqlError(db, "select infer_add_relation('m', 'x', '{}'::text[])")).code).toBe(
      '22023',
    )
    expect(
      (await sqlError(db, "select infer_add_relation('m', 'x', ARRAY['{} is', NULL])")).code,
    ).toBe('22004')
    expect(
      (await sqlError(db, "select infer_add_relation('m', 'x', ARRAY['{} is', 'no slot'])")).code,
    ).toBe('22023')
    expect(
      (await sqlError(db, "select * from infer_score_templates('m', 'capital_facts', 2)")).code,
    ).toBe('22023')
    expect(
      (await sqlError(db, "select * from infer_score_templates('nope', 'capital_facts')")).code,
    ).toBe('42704')
    expect((await sqlError(db, "select * from infer_answer('')")).code).toBe('22023')
  })
})
