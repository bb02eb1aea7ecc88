/**
 * WGSL kernels of the WebGPU backend (docs/webgpu.md).
 *
 * - `matmulShader(kind)`: scores S[q, r] = Q[q, :] . G[r, :] for a batch of
 *   queries against one part of a layer's gate rows, tiled 16 queries x 64
 *   rows x 16 columns in workgroup memory (256 threads, 4 outputs each), f32
 *   accumulation; then each row's f16 subnormal fix-ups (the values C moved
 *   out of its f16 rows, gate_split_subnormals) are added exactly. G is f32,
 *   f16 read natively (`shader-f16`), or f16 pairs packed in u32 and decoded
 *   with unpack2x16float (every device).
 * - `TOPK_SHADER`: per (query, chunk of rows) the best kk rows by rank key
 *   (|s| or s; positive_only keeps s > 0; NaN never kept), ties to the lower
 *   row: kk rounds of a workgroup arg-max, each over the rows strictly after
 *   the last winner. Few queries: many chunks per query (parallelism); many
 *   queries: one chunk per part (few candidates). The host merges the
 *   chunks, parts and layers in C's order (topk.ts).
 */

export type GateKind = 'f32' | 'f16' | 'f16-packed'

/** Fewest rows per top-k chunk (a chunk is one workgroup's share of a query's rows). */
export const TOPK_CHUNK = 1024
/** Top-k workgroups a pass aims at: chunks per query = this / queries (>= 1). */
export const TOPK_TARGET_GROUPS = 256
/** Matmul tile: queries x rows per workgroup. */
export const TILE_Q = 16
export const TILE_R = 64
/** Uniform offsets must be multiples of minUniformBufferOffsetAlignment (256 at most). */
export const UNIFORM_STRIDE = 256
/** A candidate the top-k kernel writes: row index (NONE: no more), score bits. */
export const NONE = 0xffffffff

/** Matmul uniforms, as u32: nq, rows, hidden, hasFix, colsAt, valsAt. */
export const MATMUL_PARAMS = 8
/** Top-k uniforms, as u32: nq, rows, kk, chunks, rank (0 abs, 1 signed), positive, outAt, rowBase, chunk (+3 pad). */
export const TOPK_PARAMS = 12

export function matmulShader(kind: GateKind): string {
  const elem = kind === 'f32' ? 'f32' : kind === 'f16' ? 'f16' : 'u32'
  const load =
    kind === 'f32'
      ? 'return g[i];'
      : kind === 'f16'
        ? 'return f32(g[i]);'
        : 'let w = unpack2x16float(g[i >> 1u]); return select(w.x, w.y, (i & 1u) == 1u);'
  return /* wgsl */ `${kind === 'f16' ? 'enable f16;' : ''}
struct Params { nq: u32, rows: u32, hidden: u32, hasFix: u32, colsAt: u32, valsAt: u32, a: u32, b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<${elem}>;
// fix-ups of this part: rowStart[rows + 1], then cols, then values (f32 bits)
@group(0) @binding(3) var<storage, read> fix: array<u32>;
@group(0) @binding(4) var<storage, read_write> s: array<f32>;

fn gAt(i: u32) -> f32 { ${load} }

const TQ = ${TILE_Q}u;
const TR = ${TILE_R}u;
const TK = 16u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> gs: array<f32, 1088>; // TR x (TK + 1)

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r0 = wg.x * TR;
  let qi = wg.y * TQ + lid.y;
  let t = lid.y * 16u + lid.x;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var k0 = 0u; k0 < p.hidden; k0 += TK) {
    var qv = 0.0;
    if (qi < p.nq && k0 + lid.x < p.hidden) { qv = q[qi * p.hidden + k0 + lid.x]; }
    qs[t] = qv;
    for (var j = 0u; j < 4u; j++) {
      let e = t + 256u * j;
      let r = e / TK;
      let c = e % TK;
      var v = 0.0;
      if (r0 + r < p.rows && k0 + c < p.hidden) { v = gAt((r0 + r) * p.hidden + k0 + c); }
      gs[r * (TK + 1u) + c] = v;
    }
    workgroupBarrier();
    for (var c = 0u; c < TK; c++) {
      let x = qs[lid.y * 16u + c];
      for (var j = 0u; j < 4u; j++) { acc[j] += x * gs[(lid.x + 16u * j) * (TK + 1u) + c]; }
    }
    workgroupBarrier();
  }
  if (qi >= p.nq) { return; }
  for (var j = 0u; j < 4u; j++) {
    let r = r0 + lid.x + 16u * j;
    if (r >= p.rows) { continue; }
    var v = acc[j];
    if (p.hasFix != 0u) {
      for (var e = fix[r]; e < fix[r + 1u]; e++) {
        v += bitcast<f32>(fix[p.valsAt + e]) * q[qi * p.hidden + fix[p.colsAt + e]];
      }
    }
    s[qi * p.rows + r] = v;
  }
}
`
}

export const TOPK_SHADER = /* wgsl */ `
struct Params { nq: u32, rows: u32, kk: u32, chunks: u32, rank: u32, positive: u32, outAt: u32, rowBase: u32, chunk: u32, a: u32, b: u32, c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
// candidates: (row, score bits) pairs; row ${NONE} ends a list
@group(0) @binding(2) var<storage, read_write> outp: array<u32>;

const WG = 256u;
const NONE = ${NONE}u;
var<workgroup> rk: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;

fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }

// a before b: key descending, then row ascending (C's gate_hit_before in a layer)
fn before(ka: f32, ia: u32, kb: f32, ib: u32) -> bool {
  if (ia == NONE) { return false; }
  if (ib == NONE) { return true; }
  if (ka != kb) { return ka > kb; }
  return ia < ib;
}

// Round r picks the best row strictly after round r - 1's winner in that
// (total) order: the rounds list the chunk's top kk, sorted, with no state
// but the last winner.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wg.x;
  let qi = wg.y;
  let t = lid.x;
  let base = c * p.chunk;
  let n = min(p.chunk, p.rows - base);
  let srow = qi * p.rows + base;
  let out0 = p.outAt + (qi * p.chunks + c) * p.kk;
  var pk = 0.0;
  var pi = NONE;
  for (var round = 0u; round < p.kk; round++) {
    var bk = 0.0;
    var bi = NONE;
    for (var e = t; e < n; e += WG) {
      let v = s[srow + e];
      if (isNan(v) || (p.positive != 0u && !(v > 0.0))) { continue; }
      let key = select(abs(v), v, p.rank == 1u);
      if ((pi == NONE || before(pk, pi, key, e)) && before(key, e, bk, bi)) {
        bk = key;
        bi = e;
      }
    }
    rk[t] = bk;
    ri[t] = bi;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
      if (t < w && before(rk[t + w], ri[t + w], rk[t], ri[t])) {
        rk[t] = rk[t + w];
        ri[t] = ri[t + w];
      }
      workgroupBarrier();
    }
    let win = workgroupUniformLoad(&ri[0]);
    if (win == NONE) {
      if (t == 0u) {
        for (var r = round; r < p.kk; r++) { outp[2u * (out0 + r)] = NONE; }
      }
      break;
    }
    pk = rk[0];
    pi = win;
    if (t == 0u) {
      outp[2u * (out0 + round)] = p.rowBase + base + win;
      outp[2u * (out0 + round) + 1u] = bitcast<u32>(s[srow + win]);
    }
    workgroupBarrier();
  }
}
`
