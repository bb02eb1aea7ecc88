// Relation templates and labels: infer_add_relation / infer_label_relations,
// describe() rows predicted by the forward pass, implies() over them.
import type { PGlite } from '@electric-sql/pglite'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex } from '../helpers/vindex.js'

interface EdgeRow {
  relation: string
  target: string
  confidence: number
  layer: number
}

const FACTS = `
  create table facts (subject text, relation text, object text, template text);
  insert into facts values
    ('France', 'capital', 'Paris', 'The capital of {} is'),
    ('Japan', 'capital', 'Tokyo', 'The capital of {} is'),
    ('Germany', 'currency', 'euro', 'The currency of {} is the'),
    ('France', 'currency', 'euro', 'The currency of {} is the'),
    ('Italy', 'currency', 'euro', 'The currency of {} is the'),
    ('Brazil', 'language', 'Portuguese', 'People in {} speak'),
    ('Portugal', 'language', 'Portuguese', 'People in {} speak'),
    ('France', 'continent', 'Europe', '{} is a country in'),
    ('Germany', 'continent', 'Europe', '{} is a country in'),
    ('Kenya', 'continent', 'Africa', '{} is a country in'),
    ('Egypt', 'continent', 'Africa', '{} is a country in')`

describe('relations on an inference-level model', () => {
  let db: PGlite
  beforeAll(async () => {
    db = await openDb()
    const v = await fixtureVindex('f32', 'inference')
    await db.query("select infer_create_model('q', $1, 'inference')", [v])
    await db.query("select infer_create_model('b', $1)", [v])
    await db.exec(FACTS)
  })
  afterAll(async () => {
    await db?.close()
  })

  it('describe() starts with the predicted object of each template, a whole phrase', async () => {
    await db.query("select infer_add_relation('q', 'capital', 'The capital of {} is')")
    await db.query("select infer_add_relation('q', 'currency', 'The currency of {} is the')")
    const { rows } = await db.query<EdgeRow>("select * from describe('India', 'q')")
    expect(rows.slice(0, 2).map((r) => [r.relation, r.target])).toEqual([
      ['capital', 'New Delhi'],
      ['currency', 'rupee'],
    ])
    // a one-token object: confidence = infer()'s probability of it
    const next = await db.query<{ token: string; probability: number }>(
      "select * from infer('The currency of India is the', 1, 'q')",
    )
    expect(next.rows[0]!.token).toBe(' rupee')
    expect(rows[1]!.confidence).toBeCloseTo(next.rows[0]!.probability, 9)
    // two tokens: the product of both probabilities, below the first one
    expect(rows[0]!.confidence).toBeGreaterThan(0.5)
    expect(rows[0]!.confidence).toBeLessThanOrEqual(1)
    for (const r of rows.slice(0, 2)) expect(r.layer).toBeGreaterThanOrEqual(0)
    for (const r of rows.slice(0, 2)) expect(r.layer).toBeLessThan(6)
    // the feature edges follow, marked by band
    expect(rows.length).toBeGreaterThan(2)
    expect(['syntax', 'knowledge', 'output']).toContain(rows[2]!.relation)
  })

  it('implies() is true for predicted objects only', async () => {
    const { rows } = await db.query<{ a: boolean; b: boolean; c: boolean }>(
      "select implies('India', 'new delhi', 'q') a, implies('India', 'Paris', 'q') b, implies('Japan', 'Tokyo', 'q') c",
    )
    expect(rows).toEqual([{ a: true, b: false, c: true }])
  })

  it('infer_label_relations labels features in infer.feature_labels', async () => {
    const { rows } = await db.query<{ relation: string; features: number }>(
      "select * from infer_label_relations('q', 'facts'::regclass, 300, NULL)",
    )
    expect(rows.map((r) => r.relation)).toEqual(['capital', 'continent', 'currency', 'language'])
    const labels = await db.query<{
      layer: number
      feature: number
      relation: string
      subjects: number
    }>("select layer, feature, relation, subjects from infer.feature_labels where model = 'q'")
    expect(labels.rows.length).toBe(rows.reduce((a, r) => a + r.features, 0))
    expect(labels.rows.length).toBeGreaterThan(0)
    for (const l of labels.rows) expect(l.subjects).toBeGreaterThanOrEqual(2)
    // each labelled feature's concept is an object of its relation
    for (const l of labels.rows) {
      const c = await db.query<{ concept: string }>(
        `select concept from walk(replace((select template from infer.relation_templates
            where model = 'q' and relation = $1), '{}', 'France'), 10000, 'q', 'forward')
         where layer = $2 and feature = $3`,
        [l.relation, l.layer, l.feature],
      )
      const objects = await db.query<{ o: string }>(
        'select lower(object) o from facts where relation = $1',
        [l.relation],
      )
      expect(objects.rows.map((r) => r.o)).toContain(c.rows[0]!.concept.toLowerCase())
    }
    // the default (knowledge band, top 50) runs from a query too
    const q = await db.query<{ relation: string }>(
      "select * from infer_label_relations('q', 'select * from facts')",
    )
    expect(q.rows).toHaveLength(4)
  })

  it('a browse-level model keeps the feature edges only', async () => {
    await db.query("select infer_add_relation('b', 'capital', 'The capital of {} is')")
    const { rows } = await db.query<EdgeRow>("select * from describe('India', 'b')")
    expect(rows.length).toBeGreaterThan(0)
    for (const r of rows) expect(['syntax', 'knowledge', 'output']).toContain(r.relation)
  })

  it('templates are checked', async () => {
    expect((await sqlError(db, "select infer_add_relation('q', 'x', 'no slot')")).code).toBe(
      '22023',
    )
    expect((await sqlError(db, "select infer_add_relation('nope', 'x', '{} is')")).code).toBe(
      '42704',
    )
    expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  })
})

describe('describe() after learning relations from all the fixture facts', () => {
  let db: PGlite
  const TEMPLATES: Record<string, string> = {
    capital: 'The capital of {} is',
    currency: 'The currency of {} is the',
    language: 'People in {} speak',
    continent: '{} is a country in',
  }
  const facts = readFileSync(`${QWEN_FIXTURE}/facts.jsonl`, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { subject: string; relation: string; object: string })

  beforeAll(async () => {
    db = await openDb()
    const v = await fixtureVindex('f32', 'inference')
    await db.query("select infer_create_model('q', $1, 'inference')", [v])
    await db.exec('create table facts (subject text, relation text, object text, template text)')
    await db.query(
      'insert into facts select s, r, o, t from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as x(s, r, o, t)',
      [
        facts.map((f) => f.subject),
        facts.map((f) => f.relation),
        facts.map((f) => f.object),
        facts.map((f) => TEMPLATES[f.relation]!),
      ],
    )
    await db.query("select * from infer_label_relations('q', 'facts'::regclass, 300, NULL)")
  })
  afterAll(async () => {
    await db?.close()
  })

  it("describe('France') starts with capital Paris, continent Europe, currency euro, language French, then the feature edges", async () => {
    const { rows } = await db.query<EdgeRow>("select * from describe('France', 'q')")
    expect(rows.slice(0, 4).map((r) => [r.relation, r.target])).toEqual([
      ['capital', 'Paris'],
      ['continent', 'Europe'],
      ['currency', 'euro'],
      ['language', 'French'],
    ])
    for (const r of rows.slice(0, 4)) expect(r.confidence).toBeGreaterThan(0.9)
    // then the feature edges, each marked by its label or its band
    const marks = ['syntax', 'knowledge', 'output', ...Object.keys(TEMPLATES)]
    expect(rows.length).toBeGreaterThan(4)
    for (const r of rows.slice(4)) expect(marks).toContain(r.relation)
  })

  it('describe(subject) contains the true object for at least 95% of a sample of facts', async () => {
    const sample = facts.filter((_, i) => i % 10 === 3)
    let hit = 0
    for (const f of sample) {
      const { rows } = await db.query<EdgeRow>('select target from describe($1, $2)', [
        f.subject,
        'q',
      ])
      if (rows.some((r) => r.target.toLowerCase() === f.object.toLowerCase())) hit++
    }
    expect(hit / sample.length).toBeGreaterThanOrEqual(0.95)
  })
})
