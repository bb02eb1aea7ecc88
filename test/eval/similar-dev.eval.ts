/**
 * The development half of similar_to's continent AUC (docs/evaluation.md,
 * "similar_to: same continent above other continents"): countries sorted by
 * name, every other one from the first (indexes 0, 2, 4, ...) is the
 * development half, the others the held-out half that knowledge.eval.ts
 * reports. Reads every country's signature (infer_signatures) and the dot
 * products and specificity weights of its tokens (infer_signature_dots),
 * then scores pairs of countries under variants of how similar_to weighs
 * the tokens of two signatures, in TypeScript, and prints the AUC of
 * same-continent over cross-continent pairs within the development half.
 * Variants are chosen here; only the chosen one is built into the extension.
 *
 *   npx tsx test/eval/similar-dev.eval.ts [--all]   (--all: also the held-out half and all pairs)
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgInfer } from '../helpers/db.js'
import { FIXTURE } from './facts.js'
import { auc, continentSplit } from './similar-split.js'

type Sig = { ids: number[]; conf: number[] }
/** a signature's token weights from its confidences and its tokens' specificity weights */
type Variant = (conf: number[], tokw: number[]) => number[]

const all = process.argv.includes('--all')
const work = mkdtempSync(join(tmpdir(), 'pglite-infer-simdev-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { modelName: 'knowledge-qwen2-6l', level: 'inference' })
  const db = await PGlite.create({ extensions: { pgInfer } })
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('m', $1, 'inference')", [vindex])
  await db.exec("set infer.default_model = 'm'")
  const { dev, heldOut, continent } = continentSplit()
  const countries = [...continent.keys()].sort()
  const sigs = new Map<string, Sig>()
  const { rows } = await db.query<{ ord: number; feature: number; score: number }>(
    'select ord, feature, score from infer_signatures($1)',
    [countries],
  )
  countries.forEach((c) => sigs.set(c, { ids: [], conf: [] }))
  for (const r of rows) {
    const s = sigs.get(countries[r.ord - 1]!)!
    s.ids.push(r.feature)
    s.conf.push(r.score)
  }
  const union = [...new Set(rows.map((r) => r.feature))]
  const tokw = new Map<number, number>()
  // dots.get(a).get(t): dot products of token t with a's signature tokens
  const dots = new Map<string, Map<number, number[]>>()
  for (const c of countries) {
    const r = await db.query<{ token: number; weight: number; dots: number[] }>(
      'select token, weight, dots from infer_signature_dots($1, $2)',
      [c, union],
    )
    const m = new Map<number, number[]>()
    for (const x of r.rows) {
      m.set(x.token, x.dots)
      tokw.set(x.token, x.weight)
    }
    dots.set(c, m)
  }
  const score = (a: string, b: string, v: Variant): number => {
    const sa = sigs.get(a)!,
      sb = sigs.get(b)!
    const wa = v(
      sa.conf,
      sa.ids.map((t) => tokw.get(t)!),
    )
    const wb = v(
      sb.conf,
      sb.ids.map((t) => tokw.get(t)!),
    )
    const da = dots.get(a)!
    const bestA = sa.ids.map(() => -Infinity)
    const bestB = sb.ids.map(() => -Infinity)
    sb.ids.forEach((t, j) => {
      const d = da.get(t)!
      d.forEach((x, i) => {
        bestA[i] = Math.max(bestA[i]!, x)
        bestB[j] = Math.max(bestB[j]!, x)
      })
    })
    const mean = (best: number[], w: number[]) =>
      best.reduce((s, x, i) => s + x * w[i]!, 0) / w.reduce((s, x) => s + x, 0)
    return (mean(bestA, wa) + mean(bestB, wb)) / 2
  }
  const aucOf = (set: string[], v: Variant) => {
    const pos: number[] = [],
      neg: number[] = []
    for (let i = 0; i < set.length; i++)
      for (let j = i + 1; j < set.length; j++)
        (continent.get(set[i]!) === continent.get(set[j]!) ? pos : neg).push(
          score(set[i]!, set[j]!, v),
        )
    return auc(pos, neg)
  }
  // conditional probability of a token: its confidence over the preceding token's
  const conditional = (conf: number[]) => conf.map((c, i) => (i === 0 ? c : c / conf[i - 1]!))
  const variants: [string, Variant][] = [
    ['path (definition 3)', (c, w) => c.map((x, i) => x * w[i]!)],
    ['conditional', (c, w) => conditional(c).map((x, i) => x * w[i]!)],
    ['max(path, conditional)', (c, w) => conditional(c).map((x, i) => Math.max(x, c[i]!) * w[i]!)],
    ['sqrt(path)', (c, w) => c.map((x, i) => Math.sqrt(x) * w[i]!)],
    ...[0.1, 0.3, 0.5].map((f): [string, Variant] => [
      `path, floor ${f}`,
      (c, w) => c.map((x, i) => Math.max(x, f) * w[i]!),
    ]),
    ['confidence 1 (no probability)', (c, w) => c.map((_, i) => w[i]!)],
    ...[0.5, 0.25].map((a): [string, Variant] => [
      `path, own tokens x${a}`,
      (c, w) => c.map((x, i) => (x === 1 ? a : x) * w[i]!),
    ]),
    ...[0.5, 0.25].map((a): [string, Variant] => [
      `conditional, own tokens x${a}`,
      (c, w) => conditional(c).map((x, i) => (c[i] === 1 ? a : x) * w[i]!),
    ]),
  ]
  const pairCount = (set: string[]) => {
    let same = 0
    for (let i = 0; i < set.length; i++)
      for (let j = i + 1; j < set.length; j++)
        if (continent.get(set[i]!) === continent.get(set[j]!)) same++
    return `${same} same, ${(set.length * (set.length - 1)) / 2 - same} cross pairs`
  }
  console.log(
    `${dev.length} development countries (${pairCount(dev)}), ${heldOut.length} held out (${pairCount(heldOut)}); ${union.length} distinct signature tokens\n`,
  )
  console.log(`| variant | AUC dev half |${all ? ' AUC held-out half | AUC all pairs |' : ''}`)
  console.log(`|---|---|${all ? '---|---|' : ''}`)
  for (const [name, v] of variants)
    console.log(
      `| ${name} | ${aucOf(dev, v).toFixed(3)} |${all ? ` ${aucOf(heldOut, v).toFixed(3)} | ${aucOf(countries, v).toFixed(3)} |` : ''}`,
    )
  // the built similar_to is the chosen variant (step confidence, 'conditional')
  let diff = 0
  for (let i = 0; i + 1 < Math.min(dev.length, 24); i++) {
    const { rows: r } = await db.query<{ s: number }>('select similar_to($1, $2) s', [
      dev[i],
      dev[i + 1],
    ])
    diff = Math.max(diff, Math.abs(r[0]!.s - score(dev[i]!, dev[i + 1]!, variants[1]![1])))
  }
  console.log(
    `\nsimilar_to against the 'conditional' variant, 23 pairs: max |difference| ${diff.toExponential(1)}`,
  )
  await db.close()
} finally {
  rmSync(work, { recursive: true, force: true })
}
