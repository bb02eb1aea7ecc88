/**
 * The down_meta kernel: for features f in [start, end) of a feature-major
 * down matrix D ([features x hidden]) find the k vocabulary ids with the
 * largest logits E[v] . D[f] (E = unscaled embedding, [vocab x hidden]).
 *
 * This is vocab x hidden x features multiply-adds per layer, so the loop is
 * register-tiled: two embedding rows against four down rows at a time, eight
 * accumulators, six loads per eight multiply-adds. JavaScript numbers are
 * doubles, so the sums accumulate in f64 for free and match a float64
 * reference. Ties keep the lower token id (a stable descending sort).
 * Pure function of typed arrays: it runs in a worker or on the main thread.
 */
export interface TopKJob {
  embed: Float32Array
  vocab: number
  hidden: number
  /** Feature-major down rows, [features x hidden]. */
  down: Float32Array
  start: number
  end: number
  k: number
  /** Output, [features x k], indexed by (f - start) * k. */
  outIds: Uint32Array
  outLogits: Float32Array
}

export function computeTopK(job: TopKJob): void {
  const { start, end } = job
  let f = start
  for (; f + 4 <= end; f += 4) tile4(job, f)
  for (; f < end; f++) single(job, f)
}

/** Sorted-descending top-k buffers for one feature, kept in f64. */
class TopList {
  readonly ids: Int32Array
  readonly vals: Float64Array
  min = -Infinity
  constructor(k: number) {
    this.ids = new Int32Array(k).fill(-1)
    this.vals = new Float64Array(k).fill(-Infinity)
  }
  /** Inserts after any equal values so earlier (lower) ids win ties. */
  push(id: number, v: number): void {
    const vals = this.vals
    const ids = this.ids
    let i = vals.length - 1
    while (i > 0 && vals[i - 1]! < v) {
      vals[i] = vals[i - 1]!
      ids[i] = ids[i - 1]!
      i--
    }
    vals[i] = v
    ids[i] = id
    this.min = vals[vals.length - 1]!
  }
}

function tile4(job: TopKJob, f: number): void {
  const { embed: E, down: D, vocab, hidden: H, k } = job
  const lists = [new TopList(k), new TopList(k), new TopList(k), new TopList(k)]
  const [l0, l1, l2, l3] = lists as [TopList, TopList, TopList, TopList]
  const d0 = f * H
  const d1 = d0 + H
  const d2 = d1 + H
  const d3 = d2 + H
  let v = 0
  for (; v + 2 <= vocab; v += 2) {
    const ea = v * H
    const eb = ea + H
    // prettier-ignore
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0
    for (let h = 0; h < H; h++) {
      const x = E[ea + h]!
      const y = E[eb + h]!
      const w0 = D[d0 + h]!
      const w1 = D[d1 + h]!
      const w2 = D[d2 + h]!
      const w3 = D[d3 + h]!
      a0 += x * w0
      a1 += x * w1
      a2 += x * w2
      a3 += x * w3
      b0 += y * w0
      b1 += y * w1
      b2 += y * w2
      b3 += y * w3
    }
    if (a0 > l0.min) l0.push(v, a0)
    if (a1 > l1.min) l1.push(v, a1)
    if (a2 > l2.min) l2.push(v, a2)
    if (a3 > l3.min) l3.push(v, a3)
    if (b0 > l0.min) l0.push(v + 1, b0)
    if (b1 > l1.min) l1.push(v + 1, b1)
    if (b2 > l2.min) l2.push(v + 1, b2)
    if (b3 > l3.min) l3.push(v + 1, b3)
  }
  for (; v < vocab; v++) {
    for (let j = 0; j < 4; j++) {
      const s = dot(E, v * H, D, (f + j) * H, H)
      if (s > lists[j]!.min) lists[j]!.push(v, s)
    }
  }
  for (let j = 0; j < 4; j++) store(job, f + j, lists[j]!)
}

function single(job: TopKJob, f: number): void {
  const { embed: E, down: D, vocab, hidden: H, k } = job
  const list = new TopList(k)
  for (let v = 0; v < vocab; v++) {
    const s = dot(E, v * H, D, f * H, H)
    if (s > list.min) list.push(v, s)
  }
  store(job, f, list)
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s = 0
  for (let i = 0; i < n; i++) s += a[ao + i]! * b[bo + i]!
  return s
}

/** Fewer than k vocabulary entries leaves (id 0, logit 0) padding. */
function store(job: TopKJob, f: number, list: TopList): void {
  const base = (f - job.start) * job.k
  for (let i = 0; i < job.k; i++) {
    const id = list.ids[i]!
    job.outIds[base + i] = id < 0 ? 0 : id
    job.outLogits[base + i] = id < 0 ? 0 : list.vals[i]!
  }
}
