// positionFeeds (packages/compute/src/forward-spec.ts): what a forward step
// feeds besides the tokens and the KV cache, for one run or several packed
// into one step (onnx.ts forwardSteps). Exact masks, positions and rows.
import { describe, expect, it } from 'vitest'
import { positionFeeds, type ForwardArch } from '../../packages/compute/src/forward-spec.js'

const arch = (over: Partial<ForwardArch> = {}): ForwardArch => ({
  layers: 1,
  hidden: 8,
  vocab: 16,
  heads: 2,
  kvHeads: 1,
  headDim: 4,
  intermediate: 8,
  layernorm: false,
  normOffset: 0,
  normEps: 1e-6,
  learnedPositions: false,
  activation: 0,
  plainFfn: false,
  tied: true,
  qkNorm: false,
  sandwich: false,
  slidingWindow: 0,
  attnScale: 0.5,
  attnSoftcap: 0,
  finalSoftcap: 0,
  embedScale: 1,
  sliding: [false],
  ...over,
})

/** A mask's rows of one query-head group as strings: '.' attends, 'x' masked. */
function pattern(mask: Float32Array, rows: number, width: number): string[] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from(mask.subarray(r * width, (r + 1) * width), (v) => (v === 0 ? '.' : 'x')).join(''),
  )
}

const invFreq = Float32Array.of(1, 0.01)

describe('positionFeeds', () => {
  it('one run: causal over its cached and new positions', () => {
    const p = positionFeeds(arch(), invFreq, undefined, [{ pos: 2, n: 2 }])
    expect([p.P, p.T, Array.from(p.rows, Number)]).toEqual([2, 2, [1]])
    // group 2: the same rows twice
    expect(pattern(p.maskG, 4, 4)).toEqual(['...x', '....', '...x', '....'])
  })

  it('packed runs: each token sees only its own run, rows are each run last token', () => {
    const p = positionFeeds(arch({ heads: 1 }), invFreq, undefined, [
      { pos: 2, n: 1 },
      { pos: 0, n: 3 },
      { pos: 1, n: 2 },
    ])
    expect([p.P, p.T, Array.from(p.rows, Number)]).toEqual([3, 6, [0, 3, 5]])
    // columns: cached [r0 r0 r2], new [r0 r1 r1 r1 r2 r2]
    expect(pattern(p.maskG, 6, 9)).toEqual([
      '..x.xxxxx',
      'xxxx.xxxx',
      'xxxx..xxx',
      'xxxx...xx',
      'xx.xxxx.x',
      'xx.xxxx..',
    ])
    // RoPE angles at each token's own position: 2; 0, 1, 2; 1, 2
    const cos = p.cos![0]
    expect(Array.from({ length: 6 }, (_, t) => Math.acos(cos[t * 4]!))).toEqual(
      [2, 0, 1, 2, 1, 2].map((x) => expect.closeTo(x, 6)),
    )
  })

  it('sliding layers see the last `window` positions of their own run', () => {
    const p = positionFeeds(arch({ heads: 1, slidingWindow: 2 }), invFreq, undefined, [
      { pos: 3, n: 1 },
      { pos: 0, n: 3 },
    ])
    // cached [r0 r0 r0], new [r0 r1 r1 r1]
    expect(pattern(p.maskL, 4, 7)).toEqual(['xx..xxx', 'xxxx.xx', 'xxxx..x', 'xxxxx..'])
    expect(pattern(p.maskG, 4, 7)).toEqual(['....xxx', 'xxxx.xx', 'xxxx..x', 'xxxx...'])
  })

  it('learned positions: each token its own run position', () => {
    const p = positionFeeds(arch({ learnedPositions: true }), undefined, undefined, [
      { pos: 4, n: 2 },
      { pos: 0, n: 1 },
    ])
    expect(Array.from(p.posIds!, Number)).toEqual([4, 5, 0])
    expect(p.cos).toBeUndefined()
  })
})
