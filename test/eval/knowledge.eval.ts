/**
 * `npm run eval` (docs/evaluation.md): knowledge you can trust, measured on
 * the fixture model (test/fixtures/models/knowledge-qwen2-6l) at extract
 * level inference, in one run:
 *
 *   1. retrieval: `ORDER BY body <~> q` (through the column index, checked
 *      against the sorted sequential scan on every query), pg_trgm, full-text
 *      ts_rank, the cosine of mean input embeddings (infer_embedding), and a
 *      reciprocal-rank fusion of <~>, pg_trgm and full text, on the
 *      benchmark of retrieval-set.ts: P@5 and nDCG@10 per method and kind;
 *   2. similar_to: AUC of same-continent over cross-continent country pairs;
 *   3. describe() with the training templates: the whole object, per relation;
 *   4. subjects the model cannot know: rows above infer.min_confidence and
 *      implies() on plausible objects;
 *   5. case: 'france', 'FRANCE', 'France' give the same rows;
 *   6. templates: held-out paraphrases scored on one half of the facts,
 *      describe() on the other half;
 *   7. speed: describe() with 4 relations.
 *
 * Measurements, not thresholds; nothing is tuned to particular facts.
 */
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { FIXTURE, facts } from './facts.js'
import { ndcgAt10, precisionAt5, retrievalSet, rrf, type Query } from './retrieval-set.js'
import { auc, continentSplit } from './similar-split.js'
import { HELD_OUT_TEMPLATES, TRAINING_TEMPLATES, UNKNOWN_SUBJECTS } from './knowledge-set.js'

const RELATIONS = ['capital', 'currency', 'language', 'continent']
const pct = (n: number, d: number) => (d ? `${((100 * n) / d).toFixed(1)}%` : 'n/a')
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)
const f3 = (x: number) => x.toFixed(3)

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-eval-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { modelName: 'knowledge-qwen2-6l', level: 'inference' })
  const db = await PGlite.create({ extensions: { pgInfer, pg_trgm } })
  await db.exec('CREATE EXTENSION pg_infer; CREATE EXTENSION pg_trgm')
  await db.query("select infer_create_model('m', $1, 'inference')", [vindex])
  await db.exec("set infer.default_model = 'm'")
  const floor = Number(
    (await db.query<{ v: string }>("select current_setting('infer.min_confidence') as v")).rows[0]!
      .v,
  )
  console.log(`model: ${FIXTURE} at extract level inference; infer.min_confidence = ${floor}\n`)
  // what is held out must really be new to the model
  const corpus = readFileSync(join(FIXTURE, 'corpus.txt'), 'utf8')
  for (const ts of Object.values(HELD_OUT_TEMPLATES))
    for (const t of ts) {
      const [head, tail] = t.split('{}')
      if (
        corpus
          .split('\n')
          .some(
            (l) =>
              (head ? l.includes(head.trim()) : true) &&
              (tail ? l.includes(tail.trim()) : true) &&
              head!.trim() &&
              tail!.trim(),
          )
      )
        throw new Error(`held-out template ${JSON.stringify(t)} matches a corpus line`)
    }
  // made-up names are nowhere in the corpus; the others are no fact's subject
  for (const s of UNKNOWN_SUBJECTS)
    if (
      facts.some((f) => f.subject.toLowerCase() === s.toLowerCase()) ||
      (/^[A-Z]/.test(s) && s !== 'Tuesday' && s !== 'Einstein' && corpus.includes(s))
    )
      throw new Error(`unknown subject ${JSON.stringify(s)} is known to the corpus`)

  // ---- 1. retrieval ----
  const { sentences, queries } = retrievalSet()
  await db.exec('create table docs (id int primary key, body text)')
  for (const s of sentences) await db.query('insert into docs values ($1, $2)', [s.id, s.body])
  let t0 = performance.now()
  await db.exec("create index docs_body on docs using infer (body) with (model = 'm')")
  const buildMs = performance.now() - t0
  await db.exec("create table docs_fts as select id, to_tsvector('english', body) tsv from docs")
  const embeds = new Map<number, number[]>()
  for (const s of sentences)
    embeds.set(
      s.id,
      (await db.query<{ e: number[] }>('select infer_embedding($1) e', [s.body])).rows[0]!.e,
    )
  const cosine = (a: number[], b: number[]) => {
    let d = 0,
      na = 0,
      nb = 0
    for (let i = 0; i < a.length; i++) {
      d += a[i]! * b[i]!
      na += a[i]! * a[i]!
      nb += b[i]! * b[i]!
    }
    return d / Math.sqrt(na * nb)
  }
  const ids = async (sql: string, q: string) =>
    (await db.query<{ id: number }>(sql, [q])).rows.map((r) => r.id)
  type Method = 'infer <~>' | 'pg_trgm' | 'full text' | 'mean embedding' | 'RRF(<~>, trgm, fts)'
  const scores = new Map<Method, { p5: number[]; ndcg: number[]; kind: Map<string, number[]> }>()
  const record = (m: Method, q: Query, ranked: number[]) => {
    const s = scores.get(m) ?? {
      p5: [] as number[],
      ndcg: [] as number[],
      kind: new Map<string, number[]>(),
    }
    s.p5.push(precisionAt5(ranked, q))
    const n = ndcgAt10(ranked, q)
    s.ndcg.push(n)
    s.kind.set(q.kind, [...(s.kind.get(q.kind) ?? []), n])
    scores.set(m, s)
  }
  let exact = 0
  let distractorsTop10 = 0
  const scanMs: number[] = []
  for (const q of queries) {
    t0 = performance.now()
    const viaIndex = await ids('select id from docs order by body <~> $1, id limit 100', q.text)
    scanMs.push(performance.now() - t0)
    const plan = (
      await db.query<{ 'QUERY PLAN': string }>(
        'explain select id from docs order by body <~> $1 limit 10',
        [q.text],
      )
    ).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n')
    if (!plan.includes('Index Scan')) throw new Error(`no index scan for ${q.text}:\n${plan}`)
    await db.exec('set enable_indexscan = off')
    const viaSort = await ids('select id from docs order by body <~> $1, id limit 100', q.text)
    await db.exec('reset enable_indexscan')
    if (JSON.stringify(viaIndex.slice(0, 10)) === JSON.stringify(viaSort.slice(0, 10))) exact++
    distractorsTop10 += viaIndex
      .slice(0, 10)
      .filter((id) => sentences.find((s) => s.id === id)!.subject === null).length
    const trgm = await ids('select id from docs order by body <-> $1, id limit 100', q.text)
    const fts = await ids(
      `select id from docs_fts, (select replace(plainto_tsquery('english', $1)::text, '&', '|')::tsquery q) x
       order by ts_rank(tsv, q) desc, id limit 100`,
      q.text,
    )
    const qe = (await db.query<{ e: number[] }>('select infer_embedding($1) e', [q.text])).rows[0]!
      .e
    const emb = [...embeds.entries()]
      .map(([id, e]) => ({ id, s: cosine(e, qe) }))
      .sort((a, b) => b.s - a.s || a.id - b.id)
      .map((x) => x.id)
    record('infer <~>', q, viaIndex)
    record('pg_trgm', q, trgm)
    record('full text', q, fts)
    record('mean embedding', q, emb)
    record('RRF(<~>, trgm, fts)', q, rrf([viaIndex, trgm, fts]))
  }
  const kinds = [...new Set(queries.map((q) => q.kind))]
  console.log(
    `### Retrieval: ${sentences.length} sentences (${sentences.filter((s) => !s.subject).length} distractors), ${queries.length} queries (${kinds.map((k) => `${queries.filter((q) => q.kind === k).length} ${k}`).join(', ')})\n`,
  )
  console.log(`| method | P@5 | nDCG@10 | ${kinds.map((k) => `nDCG@10 ${k}`).join(' | ')} |`)
  console.log(`|---|---|---|${kinds.map(() => '---').join('|')}|`)
  for (const [m, s] of scores)
    console.log(
      `| ${m} | ${f3(mean(s.p5))} | ${f3(mean(s.ndcg))} | ${kinds.map((k) => f3(mean(s.kind.get(k)!))).join(' | ')} |`,
    )
  console.log(
    `\nindex scan = sorted sequential scan (top 10): ${exact}/${queries.length} queries; ` +
      `distractors in <~>'s top 10: ${pct(distractorsTop10, 10 * queries.length)} (table: ${pct(sentences.filter((s) => !s.subject).length, sentences.length)}); ` +
      `CREATE INDEX ${buildMs.toFixed(0)} ms; ORDER BY <~> LIMIT 100 median ${[...scanMs].sort((a, b) => a - b)[scanMs.length >> 1]!.toFixed(1)} ms\n`,
  )

  // ---- 2. similar_to AUC ----
  // countries sorted by name, every other one from the first is the
  // development half (similar-dev.eval.ts, where similar_to's weighting was
  // chosen); the other half is held out
  const { heldOut, continent } = continentSplit()
  const held = new Set(heldOut)
  const countries = [...continent.keys()]
  const pairs = {
    all: { pos: [] as number[], neg: [] as number[] },
    held: { pos: [] as number[], neg: [] as number[] },
  }
  for (let i = 0; i < countries.length; i++) {
    const rest = countries.slice(i + 1)
    if (!rest.length) break
    const { rows } = await db.query<{ s: number[] }>('select similar_to_many($1, $2) s', [
      rest,
      countries[i],
    ])
    rest.forEach((c, j) => {
      const same = continent.get(c) === continent.get(countries[i]!)
      const s = rows[0]!.s[j]!
      ;(same ? pairs.all.pos : pairs.all.neg).push(s)
      if (held.has(c) && held.has(countries[i]!)) (same ? pairs.held.pos : pairs.held.neg).push(s)
    })
  }
  console.log(
    `### similar_to: AUC same-continent over cross-continent pairs = ${f3(auc(pairs.all.pos, pairs.all.neg))} (${pairs.all.pos.length} same, ${pairs.all.neg.length} cross pairs); ` +
      `held-out half (${heldOut.length} countries): ${f3(auc(pairs.held.pos, pairs.held.neg))} (${pairs.held.pos.length} same, ${pairs.held.neg.length} cross pairs)\n`,
  )

  // ---- 3. describe() with the training templates ----
  const setTemplates = async (templates: Record<string, string[]>) => {
    await db.exec('delete from infer.relation_templates')
    for (const [rel, ts] of Object.entries(templates))
      await db.query('select infer_add_relation($1, $2, $3::text[])', ['m', rel, ts])
  }
  await setTemplates(TRAINING_TEMPLATES)
  type Row = { relation: string; target: string; confidence: number }
  const describeAll = async (s: string, minConf: number) => {
    await db.query(`select set_config('infer.min_confidence', $1, false)`, [String(minConf)])
    const { rows } = await db.query<Row>(
      'select relation, target, confidence from describe($1) where relation = any($2) and confidence <= 1',
      [s, RELATIONS],
    )
    return rows
  }
  const subjects = [...new Set(facts.map((f) => f.subject))]
  const described = new Map<string, Row[]>()
  const times: number[] = []
  for (const s of subjects) {
    t0 = performance.now()
    described.set(s, await describeAll(s, floor))
    times.push(performance.now() - t0)
  }
  const whole = (f: (typeof facts)[number], rows: Row[]) =>
    rows.some((r) => r.relation === f.relation && r.target.toLowerCase() === f.object.toLowerCase())
  console.log('### describe() with the training templates (whole object, above the floor)\n')
  console.log('| relation | facts | whole object | rows above the floor that are right |')
  console.log('|---|---|---|---|')
  for (const rel of [...RELATIONS, 'all']) {
    const fs = facts.filter((f) => rel === 'all' || f.relation === rel)
    const rows = fs.flatMap((f) =>
      described.get(f.subject)!.filter((r) => r.relation === f.relation),
    )
    const right = fs.filter((f) => whole(f, described.get(f.subject)!)).length
    console.log(`| ${rel} | ${fs.length} | ${pct(right, fs.length)} | ${pct(right, rows.length)} |`)
  }
  const misses = facts.filter((f) => !whole(f, described.get(f.subject)!))
  console.log(
    `\nmisses: ${misses
      .slice(0, 12)
      .map(
        (f) =>
          `${f.subject}/${f.relation}: ${JSON.stringify(f.object)} -> ${JSON.stringify(described.get(f.subject)!.find((r) => r.relation === f.relation)?.target ?? null)}`,
      )
      .join('; ')}`,
  )
  const punct = ['United States', 'Haiti', 'Chad', 'Yemen', 'San Marino']
  console.log(
    `punctuated capitals: ${punct.map((s) => `${s} -> ${JSON.stringify(described.get(s)!.find((r) => r.relation === 'capital')?.target ?? null)}`).join(', ')}\n`,
  )
  times.sort((a, b) => a - b)
  // the same with one template per relation (the first of each)
  await setTemplates(Object.fromEntries(RELATIONS.map((r) => [r, [TRAINING_TEMPLATES[r]![0]!]])))
  const times1: number[] = []
  for (const s of subjects) {
    t0 = performance.now()
    await describeAll(s, floor)
    times1.push(performance.now() - t0)
  }
  times1.sort((a, b) => a - b)
  await setTemplates(TRAINING_TEMPLATES)
  const med = (xs: number[]) => xs[xs.length >> 1]!.toFixed(1)
  const p90 = (xs: number[]) => xs[Math.floor(xs.length * 0.9)]!.toFixed(1)
  console.log(
    `### Speed: describe() with ${RELATIONS.length} relations over ${times.length} subjects: ` +
      `one template each: median ${med(times1)} ms, p90 ${p90(times1)} ms; ` +
      `all ${Object.values(TRAINING_TEMPLATES).flat().length} training templates: median ${med(times)} ms, p90 ${p90(times)} ms\n`,
  )

  // ---- 4. unknown subjects ----
  let unknownRows = 0
  let unknownAbove = 0
  const plausible = [
    'Paris',
    'London',
    'Cairo',
    'euro',
    'dollar',
    'English',
    'French',
    'Africa',
    'Europe',
    'Asia',
  ]
  let impFalse = 0
  let impAll = 0
  for (const s of UNKNOWN_SUBJECTS) {
    unknownRows += (await describeAll(s, 0)).length
    unknownAbove += (await describeAll(s, floor)).length
    for (const o of plausible) {
      impAll++
      if (!(await db.query<{ v: boolean }>('select implies($1, $2) v', [s, o])).rows[0]!.v)
        impFalse++
    }
  }
  let trueAll = 0
  let trueKept = 0
  for (const f of facts) {
    trueAll++
    if (
      (await db.query<{ v: boolean }>('select implies($1, $2) v', [f.subject, f.object])).rows[0]!.v
    )
      trueKept++
  }
  console.log(`### Subjects the model cannot know (${UNKNOWN_SUBJECTS.length})\n`)
  console.log(
    `describe() predicted rows above the floor: ${unknownAbove}/${unknownRows} (${pct(unknownAbove, unknownRows)}); ` +
      `implies(unknown, plausible object) false: ${pct(impFalse, impAll)} of ${impAll}; ` +
      `implies(subject, object) true for the facts: ${pct(trueKept, trueAll)} of ${trueAll}\n`,
  )

  // ---- 5. case ----
  let same = 0
  for (const s of subjects) {
    const key = (rows: Row[]) => JSON.stringify(rows.map((r) => [r.relation, r.target]))
    const want = key(described.get(s)!)
    const lower = key(await describeAll(s.toLowerCase(), floor))
    const upper = key(await describeAll(s.toUpperCase(), floor))
    if (lower === want && upper === want) same++
  }
  console.log(
    `### Case: describe() rows equal for lower, UPPER and as-written subjects: ${same}/${subjects.length}\n`,
  )

  // ---- 6. held-out templates, learned on one half, scored on the other ----
  // split by subject: every other country's facts are learned from, the rest scored
  const learnSubjects = new Set(subjects.filter((_, i) => i % 2 === 0))
  const learn = facts.filter((f) => learnSubjects.has(f.subject))
  const score = facts.filter((f) => !learnSubjects.has(f.subject))
  await db.exec('delete from infer.relation_templates')
  await db.exec(
    'create table learn_facts (subject text, relation text, object text, template text)',
  )
  for (const f of learn)
    for (const t of HELD_OUT_TEMPLATES[f.relation]!)
      await db.query('insert into learn_facts values ($1, $2, $3, $4)', [
        f.subject,
        f.relation,
        f.object,
        t,
      ])
  const { rows: scored } = await db.query<{
    relation: string
    template: string
    facts: number
    precision: number
    weight: number
  }>(
    "select relation, template, scored as facts, precision_at_1 as precision, weight from infer_score_templates('m', 'learn_facts')",
  )
  console.log('### Held-out paraphrase templates (never in the training corpus)\n')
  console.log(
    'scored on the learning half (precision@1 of the whole greedy answer; weight 0 = dropped):\n',
  )
  console.log('| relation | template | facts | precision@1 | weight |')
  console.log('|---|---|---|---|---|')
  for (const r of scored)
    console.log(
      `| ${r.relation} | \`${r.template}\` | ${r.facts} | ${pct(r.precision * r.facts, r.facts)} | ${r.weight.toFixed(2)} |`,
    )
  console.log('\ndescribe() on the scoring half, with the kept templates only:\n')
  console.log(
    '| relation | facts | recall (whole object above the floor) | precision of rows above the floor | recall with floor 0 |',
  )
  console.log('|---|---|---|---|---|')
  const agg = { n: 0, right: 0, rows: 0, right0: 0 }
  for (const rel of RELATIONS) {
    const fs = score.filter((f) => f.relation === rel)
    let right = 0,
      rows = 0,
      right0 = 0
    for (const f of fs) {
      const above = (await describeAll(f.subject, floor)).filter((r) => r.relation === rel)
      rows += above.length
      if (whole(f, above)) right++
      if (
        whole(
          f,
          (await describeAll(f.subject, 0)).filter((r) => r.relation === rel),
        )
      )
        right0++
    }
    agg.n += fs.length
    agg.right += right
    agg.rows += rows
    agg.right0 += right0
    console.log(
      `| ${rel} | ${fs.length} | ${pct(right, fs.length)} | ${pct(right, rows)} | ${pct(right0, fs.length)} |`,
    )
  }
  console.log(
    `| all | ${agg.n} | ${pct(agg.right, agg.n)} | ${pct(agg.right, agg.rows)} | ${pct(agg.right0, agg.n)} |`,
  )
  await db.close()
} finally {
  rmSync(work, { recursive: true, force: true })
}
