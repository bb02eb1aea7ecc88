/**
 * The split of similar_to's continent AUC (docs/evaluation.md): countries
 * sorted by name, every other one from the first (indexes 0, 2, 4, ...) is
 * the development half (similar-dev.eval.ts), the others the held-out half
 * (knowledge.eval.ts reports its pairs' AUC next to all pairs').
 */
import { facts } from './facts.js'

export function continentSplit(): {
  dev: string[]
  heldOut: string[]
  continent: Map<string, string>
} {
  const continent = new Map(
    facts.filter((f) => f.relation === 'continent').map((f) => [f.subject, f.object]),
  )
  const sorted = [...continent.keys()].sort()
  return {
    dev: sorted.filter((_, i) => i % 2 === 0),
    heldOut: sorted.filter((_, i) => i % 2 === 1),
    continent,
  }
}

/** AUC of pos over neg, ties counted half. */
export function auc(pos: number[], neg: number[]): number {
  let wins = 0
  const negSorted = [...neg].sort((a, b) => a - b)
  for (const p of pos) {
    let lo = 0,
      hi = negSorted.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (negSorted[mid]! < p) lo = mid + 1
      else hi = mid
    }
    let eq = lo
    while (eq < negSorted.length && negSorted[eq] === p) eq++
    wins += lo + (eq - lo) / 2
  }
  return wins / Math.max(pos.length * neg.length, 1)
}
