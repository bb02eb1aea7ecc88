// Relation templates and labels: infer_add_relation / infer_label_relations,
// describe() rows predicted by the forward pass, implies() over them.
import type { PGlite } from '@electric-sql/pglite'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, openPersistent, sqlError } from '../helpers/db.js'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { isLettersOnly, STOPWORDS } from '../reference/knowledge.js'

interface EdgeRow {
  relation: string
  target: string
  confidence: number
  layer: number
}

interface WalkRow {
  layer: number
  feature: number
  activation: number
  concept: string
}

interface LabelRow {
  layer: number
  feature: number
  sign: number
  relation: string
  subjects: number
}

interface Fact {
  subject: string
  relation: string
  object: string
  template: string
}

const LABELS_SQL = `select layer, feature, sign, relation, subjects from infer.feature_labels
  where model = 'q' order by layer, feature, sign, relation`

/**
 * The labels infer_label_relations should store, from forward-mode walk()
 * rows: a feature whose concept (write token) is the object's first word
 * counts for the subject, with the sign of its activation; 2+ subjects label.
 */
async function expectedLabels(
  db: PGlite,
  facts: Fact[],
  top: number,
  band: string | null,
): Promise<LabelRow[]> {
  const subjects = new Map<string, Set<string>>()
  for (const f of facts) {
    const { rows } = await db.query<WalkRow>("select * from walk($1, $2, 'q', 'forward', $3)", [
      f.template.replace('{}', f.subject),
      top,
      band,
    ])
    for (const w of rows) {
      if (w.concept.toLowerCase() !== f.object.trim().split(' ')[0]!.toLowerCase()) continue
      const key = JSON.stringify([w.layer, w.feature, Math.sign(w.activation), f.relation])
      subjects.set(key, (subjects.get(key) ?? new Set()).add(f.subject))
    }
  }
  return [...subjects]
    .filter(([, s]) => s.size >= 2)
    .map(([k, s]) => {
      const [layer, feature, sign, relation] = JSON.parse(k) as [number, number, number, string]
      return { layer, feature, sign, relation, subjects: s.size }
    })
    .sort(
      (a, b) =>
        a.layer - b.layer ||
        a.feature - b.feature ||
        a.sign - b.sign ||
        (a.relation < b.relation ? -1 : a.relation > b.relation ? 1 : 0),
    )
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
    // a one-token object: confidence = infer()'s probability of it x fit / (fit + 0.01),
    // the subject's fit being the best over the templates of its one token ' India'
    // against the token the model expected most there
    const next = await db.query<{ token: string; probability: number }>(
      "select * from infer('The currency of India is the', 1, 'q')",
    )
    expect(next.rows[0]!.token).toBe(' rupee')
    let fit = 0
    for (const prefix of ['The capital of', 'The currency of']) {
      const { rows: d } = await db.query<{ token: string; probability: number }>(
        'select token, probability from infer($1, 2595, $2)',
        [prefix, 'q'],
      )
      fit = Math.max(fit, d.find((t) => t.token === ' India')!.probability / d[0]!.probability)
    }
    expect(fit).toBeGreaterThan(0.1)
    expect(rows[1]!.confidence).toBeCloseTo((next.rows[0]!.probability * fit) / (fit + 0.01), 6)
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
    const labels = await db.query<LabelRow>(LABELS_SQL)
    const facts = await db.query<Fact>('select * from facts')
    expect(labels.rows).toEqual(await expectedLabels(db, facts.rows, 300, null))
    expect(labels.rows.length).toBeGreaterThan(0)
    for (const r of rows)
      expect(r.features).toBe(labels.rows.filter((l) => l.relation === r.relation).length)
    // the defaults (knowledge band, top 50) from a query: relearned by the same rule
    const q = await db.query<{ relation: string }>(
      "select * from infer_label_relations('q', 'select * from facts')",
    )
    expect(q.rows).toHaveLength(4)
    const defaults = (await db.query<LabelRow>(LABELS_SQL)).rows
    expect(defaults).toEqual(await expectedLabels(db, facts.rows, 50, 'knowledge'))
    // a bare table name as text works like the regclass form
    await db.query("select * from infer_label_relations('q', 'facts', 300, NULL)")
    expect((await db.query<LabelRow>(LABELS_SQL)).rows).toEqual(labels.rows)
    await db.query("select * from infer_label_relations('q', 'facts')")
    expect((await db.query<LabelRow>(LABELS_SQL)).rows).toEqual(defaults)
  })

  it('bad facts are clear errors, and the labels learned before are kept', async () => {
    const before = (await db.query<LabelRow>(LABELS_SQL)).rows
    expect(before.length).toBeGreaterThan(0)
    const one = (subject: string, object: string, template = 'The capital of {} is') =>
      `select * from infer_label_relations('q', $$select ${subject} as subject, 'capital' as relation, ${object} as object, '${template}' as template$$)`
    const bad: [string, string, RegExp][] = [
      [
        "select * from infer_label_relations('q', 'select 1 as subject')",
        '42703',
        /facts must have the columns subject, relation, object and template/,
      ],
      [one("'Peru'", 'NULL'), '22004', /a fact has a NULL .*: \(Peru, capital, NULL/],
      [one('NULL', "'Lima'"), '22004', /a fact has a NULL/],
      [one("'Peru'", "' '"), '22023', /empty subject or object/],
      [one("'Peru'", "'Lima'", 'no slot'), '22023', /has no \{\} for the subject/],
      ["select * from infer_label_relations('nope', 'facts'::regclass)", '42704', /"nope"/],
      [
        "select * from infer_label_relations('q', 'facts'::regclass, 0)",
        '22023',
        /top must be between 1 and 10000, not 0/,
      ],
      ["select * from infer_label_relations('q', 'facts'::regclass, NULL)", '22004', /NULL/],
      [
        "select * from infer_label_relations('q', 'facts'::regclass, band => 'middle')",
        '22023',
        /invalid band "middle"/,
      ],
      ["select * from infer_label_relations('q', 'select from from')", '42601', /syntax/],
      [
        "select * from infer_label_relations('b', 'facts'::regclass)",
        '55000',
        /extract level inference/,
      ],
    ]
    for (const [sql, code, message] of bad) {
      const err = await sqlError(db, sql)
      expect([sql, err.code]).toEqual([sql, code])
      expect(err.message).toMatch(message)
    }
    expect((await db.query<LabelRow>(LABELS_SQL)).rows).toEqual(before)
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
    // the defaults: the knowledge band, the top 50 activations
    await db.query("select * from infer_label_relations('q', 'facts'::regclass)")
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
    // then the labelled feature edges: what each template's pass activates
    const want = await expectedLabelledEdges('France')
    expect(want.length).toBeGreaterThan(0)
    expect(want[0]).toMatchObject({ relation: 'continent', target: 'Europe', layer: 3 })
    const labelled = rows.slice(4, 4 + want.length)
    expect(labelled.map((r) => [r.relation, r.target, r.layer])).toEqual(
      want.map((r) => [r.relation, r.target, r.layer]),
    )
    for (const [i, r] of labelled.entries())
      expect(r.confidence).toBeCloseTo(want[i]!.confidence, 4)
    // then the gate-KNN edges, each marked by a label or its band
    const marks = ['syntax', 'knowledge', 'output', ...Object.keys(TEMPLATES)]
    expect(rows.length).toBeGreaterThan(4 + want.length)
    for (const r of rows.slice(4 + want.length)) expect(marks).toContain(r.relation)
  })

  /**
   * describe()'s labelled edges from walk() and infer.feature_labels: in each
   * template's pass, per layer the 20 (infer.describe_top_k) strongest
   * activations, kept when labelled with the template's relation for their
   * sign; content-word targets, the strongest per relation and target.
   */
  async function expectedLabelledEdges(entity: string): Promise<EdgeRow[]> {
    const labels = (await db.query<LabelRow>(LABELS_SQL)).rows
    const has = (w: WalkRow, relation: string) =>
      labels.some(
        (l) =>
          l.layer === w.layer &&
          l.feature === w.feature &&
          l.sign === Math.sign(w.activation) &&
          l.relation === relation,
      )
    const best = new Map<string, EdgeRow>()
    for (const [relation, template] of Object.entries(TEMPLATES)) {
      const { rows } = await db.query<WalkRow>("select * from walk($1, 10000, 'q', 'forward')", [
        template.replace('{}', entity),
      ])
      const perLayer = new Map<number, number>()
      for (const w of rows) {
        const rank = (perLayer.get(w.layer) ?? 0) + 1
        perLayer.set(w.layer, rank)
        const lower = w.concept.toLowerCase()
        if (rank > 20 || !has(w, relation)) continue
        if (!isLettersOnly(w.concept) || lower === entity.toLowerCase() || STOPWORDS.has(lower))
          continue
        const edge = {
          relation,
          target: w.concept,
          confidence: Math.abs(w.activation),
          layer: w.layer,
        }
        const key = `${relation}\u0000${lower}`
        const old = best.get(key)
        if (!old || edge.confidence > old.confidence) best.set(key, edge)
      }
    }
    return [...best.values()].sort((a, b) => b.confidence - a.confidence || a.layer - b.layer)
  }

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

describe('relation templates and labels persist with the database', () => {
  it('survive closing and reopening; describe() uses them after the reopen', async () => {
    const dataDir = join(scratchDir('labels'), 'pgdata')
    const v = await fixtureVindex('f32', 'inference')
    const db = await openPersistent(dataDir)
    await db.query("select infer_create_model('q', $1, 'inference')", [v])
    await db.exec(FACTS)
    await db.query("select * from infer_label_relations('q', 'facts', 300, NULL)")
    const labels = (await db.query<LabelRow>(LABELS_SQL)).rows
    expect(labels.length).toBeGreaterThan(0)
    const before = (await db.query<EdgeRow>("select * from describe('France', 'q')")).rows
    await db.close()

    const again = await openPersistent(dataDir)
    try {
      expect((await again.query<LabelRow>(LABELS_SQL)).rows).toEqual(labels)
      const templates = await again.query<{ relation: string }>(
        "select relation from infer.relation_templates where model = 'q' order by relation",
      )
      const relations = ['capital', 'continent', 'currency', 'language']
      expect(templates.rows.map((r) => r.relation)).toEqual(relations)
      // the model reloads lazily; the same rows, labelled edges included
      const after = (await again.query<EdgeRow>("select * from describe('France', 'q')")).rows
      expect(after).toEqual(before)
      expect(after.slice(4).some((r) => relations.includes(r.relation))).toBe(true)
    } finally {
      await again.close()
    }
  })
})

describe('a model with no relation templates', () => {
  it('describe() says so once, with the hint to add templates', async () => {
    const own = await openDb()
    await own.query("select infer_create_model('bare', $1, 'inference')", [
      await fixtureVindex('f16', 'inference'),
    ])
    const notices: string[] = []
    const onNotice = (n: { message?: string; hint?: string }) =>
      notices.push(`${n.message} | ${n.hint}`)
    await own.query("select * from describe('France', 'bare')", [], { onNotice })
    await own.query("select * from describe('Japan', 'bare')", [], { onNotice })
    expect(notices).toEqual([
      'model "bare" has no relation templates: describe() shows feature edges only | ' +
        "Add templates with infer_add_relation('bare', 'capital', 'The capital of {} is'), " +
        "then label features with infer_label_relations('bare', <facts>).",
    ])
    await own.query("select infer_add_relation('bare', 'capital', 'The capital of {} is')")
    notices.length = 0
    await own.query("select * from describe('France', 'bare')", [], { onNotice })
    expect(notices).toEqual([])
    await own.close()
  })
})
