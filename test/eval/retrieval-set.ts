/**
 * The retrieval benchmark of `npm run eval` (docs/evaluation.md): sentences
 * about the fixture's countries plus distractor sentences, queries of four
 * kinds, and graded relevance. Built deterministically from facts.jsonl and
 * corpus.txt; nothing here depends on any method's output.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FIXTURE, facts, type Fact } from './facts.js'

export interface Sentence {
  id: number
  body: string
  /** the country the sentence is about; null for a distractor */
  subject: string | null
  relation: string | null
  object: string | null
}

export interface Query {
  kind: 'country' | 'capital' | 'value' | 'capital of'
  text: string
  /** sentence id -> gain (2: the sentence states what was asked, 1: about the same country or value) */
  gains: Map<number, number>
}

/** Sentence templates per relation: the first are training templates, the rest held out. */
const SENTENCE_TEMPLATES: Record<string, string[]> = {
  capital: [
    'The capital of {s} is {o}.',
    '{o} is the capital of {s}.',
    'The government of {s} sits in {o}.',
    'Visitors to {s} often start in its capital, {o}.',
  ],
  currency: [
    'The currency of {s} is the {o}.',
    'In {s}, people pay with the {o}.',
    'Prices in {s} are given in the {o}.',
    'Shops in {s} take the {o}.',
  ],
  language: [
    'People in {s} speak {o}.',
    'The main language of {s} is {o}.',
    'Most newspapers in {s} are written in {o}.',
    'Children in {s} learn {o} at school.',
  ],
  continent: [
    '{s} is a country in {o}.',
    '{s} lies in {o}.',
    'On a map, {s} is found in {o}.',
    '{s} belongs to {o}.',
  ],
}

const RELATIONS = ['capital', 'currency', 'language', 'continent']

export function retrievalSet(): { sentences: Sentence[]; queries: Query[] } {
  const subjects = [...new Set(facts.map((f) => f.subject))]
  const chosen = subjects.filter((_, i) => i % 3 === 0) // 66 countries
  const byKey = new Map<string, Fact>(facts.map((f) => [`${f.subject}/${f.relation}`, f]))
  const sentences: Sentence[] = []
  chosen.forEach((s, ci) =>
    RELATIONS.forEach((r, ri) => {
      const f = byKey.get(`${s}/${r}`)
      if (!f) return
      const ts = SENTENCE_TEMPLATES[r]!
      const t = ts[(ci + ri) % ts.length]!
      sentences.push({
        id: 0,
        body: t.replace('{s}', s).replace('{o}', f.object),
        subject: s,
        relation: r,
        object: f.object,
      })
    }),
  )
  // distractors: the corpus's general sentences (days, months, numbers, colours, ...)
  const corpus = readFileSync(join(FIXTURE, 'corpus.txt'), 'utf8').split('\n').filter(Boolean)
  const filler = corpus.slice(corpus.length - 234)
  const nDistract = Math.ceil(sentences.length / 4) // 20% of the whole table
  for (let i = 0; i < nDistract; i++)
    sentences.push({
      id: 0,
      body: filler[(i * 3) % filler.length]!,
      subject: null,
      relation: null,
      object: null,
    })
  // interleave deterministically so that ids do not group countries
  const order = sentences
    .map((_, i) => i)
    .sort((a, b) => ((a * 7919) % 1009) - ((b * 7919) % 1009) || a - b)
  const table = order.map((i, k) => ({ ...sentences[i]!, id: k + 1 }))

  const about = (s: string) => table.filter((x) => x.subject === s)
  const queries: Query[] = []
  const pick = (offset: number) => chosen.filter((_, i) => i % 4 === offset).slice(0, 16)
  for (const s of pick(0))
    queries.push({ kind: 'country', text: s, gains: new Map(about(s).map((x) => [x.id, 1])) })
  for (const s of pick(1)) {
    const cap = byKey.get(`${s}/capital`)!.object
    queries.push({
      kind: 'capital',
      text: cap,
      gains: new Map(about(s).map((x) => [x.id, x.relation === 'capital' ? 2 : 1])),
    })
  }
  for (const s of pick(2))
    queries.push({
      kind: 'capital of',
      text: `capital of ${s}`,
      gains: new Map(about(s).map((x) => [x.id, x.relation === 'capital' ? 2 : 1])),
    })
  // relation values that at least two of the table's countries share
  const counts = new Map<string, { relation: string; n: number }>()
  for (const x of table)
    if (x.relation && x.relation !== 'capital') {
      const c = counts.get(x.object!) ?? { relation: x.relation, n: 0 }
      c.n++
      counts.set(x.object!, c)
    }
  const values = [...counts.entries()]
    .filter(([, c]) => c.n >= 2)
    .sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0]))
    .slice(0, 16)
  for (const [v, c] of values)
    queries.push({
      kind: 'value',
      text: v,
      gains: new Map(
        table.filter((x) => x.relation === c.relation && x.object === v).map((x) => [x.id, 1]),
      ),
    })
  return { sentences: table, queries }
}

/** Precision of the first 5 ids: the share with a positive gain. */
export function precisionAt5(ranked: number[], q: Query): number {
  return ranked.slice(0, 5).filter((id) => (q.gains.get(id) ?? 0) > 0).length / 5
}

/** nDCG@10 with gains 2^g - 1 and log2 discounts. */
export function ndcgAt10(ranked: number[], q: Query): number {
  const dcg = (gs: number[]) =>
    gs.slice(0, 10).reduce((a, g, i) => a + (2 ** g - 1) / Math.log2(i + 2), 0)
  const ideal = dcg([...q.gains.values()].sort((a, b) => b - a))
  return ideal > 0 ? dcg(ranked.map((id) => q.gains.get(id) ?? 0)) / ideal : 0
}

/** Reciprocal-rank fusion (k = 60) of several rankings of ids. */
export function rrf(rankings: number[][], k = 60): number[] {
  const score = new Map<number, number>()
  for (const r of rankings)
    r.forEach((id, i) => score.set(id, (score.get(id) ?? 0) + 1 / (k + i + 1)))
  return [...score.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([id]) => id)
}
