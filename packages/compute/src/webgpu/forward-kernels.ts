/**
 * WGSL kernels of the WebGPU forward step (webgpu/forward.ts). Every
 * activation is f32; f16 weights are decoded from their bits in the shader
 * (subnormals exactly, so the f16 fix-ups C moved out of its rows can go
 * back in before upload and no device flushes them), f32 weights are read
 * as they are. Each kernel reads its offsets and sizes from a uniform block
 * of 16 words.
 */

/** Uniform block words per dispatch (64 bytes), at UNIFORM_STRIDE offsets. */
export const FWD_PARAMS = 16

const PARAMS = /* wgsl */ `
struct P { a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32,
           i: u32, j: u32, k: u32, l: u32, fa: f32, fb: f32, fc: f32, fd: f32 }
@group(0) @binding(0) var<uniform> p: P;`

/** w[i] of a matrix part: f16 halves packed two per u32 (isF16), or f32 bits. */
const WEIGHT = /* wgsl */ `
fn halfBits(h: u32) -> f32 {
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  var v: f32;
  if (e == 0u) {
    v = f32(m) * 5.9604644775390625e-8; // m * 2^-24: subnormals exactly
  } else if (e == 31u) {
    v = bitcast<f32>(0x7f800000u | (m << 13u));
  } else {
    v = bitcast<f32>(((e + 112u) << 23u) | (m << 13u));
  }
  return select(v, -v, (h & 0x8000u) != 0u);
}
fn weight(i: u32, isF16: u32) -> f32 {
  if (isF16 == 0u) { return bitcast<f32>(w[i]); }
  let word = w[i >> 1u];
  return halfBits(select(word & 0xffffu, word >> 16u, (i & 1u) == 1u));
}`

/**
 * y[t, rowBase + r] (stride outStride, from yOff) = x[t, :] . W[r, :] + b:
 * a workgroup per output row, its 64 threads across the columns, 8 tokens
 * at a time so a weight is read once per 8 tokens.
 * a=n b=rows c=cols d=rowBase e=outStride f=xOff g=yOff h=hasBias i=isF16 j=nx
 */
export const LINEAR = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${WEIGHT}
var<workgroup> red: array<f32, 512>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x + wg.y * p.j;
  if (r >= p.b) { return; }
  let cols = p.c;
  for (var t0 = 0u; t0 < p.a; t0 += 8u) {
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (var c = lid; c < cols; c += 64u) {
      let wv = weight(r * cols + c, p.i);
      for (var j = 0u; j < 8u; j++) {
        if (t0 + j < p.a) { acc[j] += wv * x[p.f + (t0 + j) * cols + c]; }
      }
    }
    for (var j = 0u; j < 8u; j++) { red[j * 64u + lid] = acc[j]; }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
      if (lid < s) {
        for (var j = 0u; j < 8u; j++) { red[j * 64u + lid] += red[j * 64u + lid + s]; }
      }
      workgroupBarrier();
    }
    if (lid < 8u && t0 + lid < p.a) {
      var v = red[lid * 64u];
      if (p.h != 0u) { v += bias[p.d + r]; }
      y[p.g + (t0 + lid) * p.e + p.d + r] = v;
    }
    workgroupBarrier();
  }
}`

/**
 * out[t, :] = x[t, :] of the rows of one matrix part that ids name, times
 * scale, added to out when accumulate (GPT-2's learned positions).
 * a=n b=rows c=cols d=rowBase e=accumulate i=isF16; fa=scale
 */
export const GATHER = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${WEIGHT}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  if (t >= p.a) { return; }
  let id = ids[t];
  if (id < p.d || id >= p.d + p.b) { return; }
  let r = id - p.d;
  for (var c = lid; c < p.c; c += 64u) {
    var v = weight(r * p.c + c, p.i) * p.fa;
    if (p.e != 0u) { v += out[t * p.c + c]; }
    out[t * p.c + c] = v;
  }
}`

/**
 * Per row (a workgroup each): RMSNorm x / sqrt(mean(x^2) + eps) * w, or
 * LayerNorm (x - mean) / sqrt(var + eps) * w + b; w already holds the norm
 * offset (Gemma's 1 + w).
 * a=rows b=width c=inOff d=outOff e=layernorm h=hasBias; fa=eps
 */
export const NORM = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> nw: array<f32>;
@group(0) @binding(3) var<storage, read> nb: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
var<workgroup> red: array<f32, 256>;
fn total(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let out = red[0];
  workgroupBarrier();
  return out;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  if (row >= p.a) { return; }
  let n = p.b;
  let base = p.c + row * n;
  var mean = 0.0;
  if (p.e != 0u) {
    var s = 0.0;
    for (var i = lid; i < n; i += 256u) { s += x[base + i]; }
    mean = total(s, lid) / f32(n);
  }
  var q = 0.0;
  for (var i = lid; i < n; i += 256u) { let d = x[base + i] - mean; q += d * d; }
  let r = 1.0 / sqrt(total(q, lid) / f32(n) + p.fa);
  for (var i = lid; i < n; i += 256u) {
    var v = (x[base + i] - mean) * r * nw[i];
    if (p.h != 0u) { v += nb[i]; }
    y[p.d + row * n + i] = v;
  }
}`

/**
 * RoPE in place on [n, heads, hd] with cos/sin [n, hd]: the rotate-half
 * form (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).
 * a=n b=heads c=hd
 */
export const ROPE = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<storage, read> sn: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let hh = p.c / 2u;
  let e = gid.x + gid.y * 65535u * 64u;
  if (e >= p.a * p.b * hh) { return; }
  let i = e % hh;
  let th = e / hh;
  let t = th / p.b;
  let at = th * p.c;
  let x1 = x[at + i];
  let x2 = x[at + i + hh];
  x[at + i] = x1 * cs[t * p.c + i] - x2 * sn[t * p.c + i];
  x[at + i + hh] = x2 * cs[t * p.c + i + hh] + x1 * sn[t * p.c + i + hh];
}`

/**
 * Appends the step's keys or values [n, kvHeads, hd] (from srcOff) to a
 * layer's cache [kvHeads, cap, hd] at positions pos..pos+n-1.
 * a=n b=kvHeads c=hd d=pos e=cap f=srcOff
 */
export const KV_APPEND = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x + gid.y * 65535u * 64u;
  if (e >= p.a * p.b * p.c) { return; }
  let d = e % p.c;
  let h = (e / p.c) % p.b;
  let t = e / (p.c * p.b);
  cache[(h * p.e + p.d + t) * p.c + d] = src[p.f + e];
}`

/**
 * Causal attention of the step's queries [n, heads, hd] over the cache: a
 * workgroup per (token, head), query head h reading kv head h / group;
 * scores scaled, soft-capped (cap > 0), masked to the last `window`
 * positions on sliding layers, softmax, weighted sum of the values into
 * out [n, heads * hd]. Scores live in `sc` [n * heads, total].
 * a=n b=heads c=kvHeads d=hd e=pos f=cap g=window h=total; fa=scale fb=softcap
 */
export const ATTENTION = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> sc: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
var<workgroup> red: array<f32, 64>;
fn softcap(s: f32) -> f32 {
  if (p.fb <= 0.0) { return s; }
  return tanh(clamp(s / p.fb, -15.0, 15.0)) * p.fb;
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let th = wg.x;
  if (th >= p.a * p.b) { return; }
  let t = th / p.b;
  let h = th % p.b;
  let kvh = h / (p.b / p.c);
  let hd = p.d;
  let pos = p.e + t;
  var lo = 0u;
  if (p.g > 0u && pos + 1u > p.g) { lo = pos + 1u - p.g; }
  let qa = th * hd;
  let ka = kvh * p.f * hd;
  let sa = th * p.h;
  var m = -3.4e38;
  for (var j = lo + lid; j <= pos; j += 64u) {
    var s = 0.0;
    for (var d = 0u; d < hd; d++) { s += q[qa + d] * kc[ka + j * hd + d]; }
    s = softcap(s * p.fa);
    sc[sa + j] = s;
    m = max(m, s);
  }
  red[lid] = m;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var z = 0.0;
  for (var j = lo + lid; j <= pos; j += 64u) {
    let e = exp(sc[sa + j] - mx);
    sc[sa + j] = e;
    z += e;
  }
  red[lid] = z;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  storageBarrier();
  for (var d = lid; d < hd; d += 64u) {
    var acc = 0.0;
    for (var j = lo; j <= pos; j++) { acc += sc[sa + j] * vc[ka + j * hd + d]; }
    out[th * hd + d] = acc * inv;
  }
}`

/**
 * Element-wise, in place on a[aOff ..]: mode 0 a += b; 1 a = act(a) (* b
 * unless plain); 2 a = softcap(a).
 * a=count b=mode c=activation (0 silu, 1 gelu tanh, 2 gelu erf) d=plain e=aOff; fa=cap
 */
export const ELEMENTWISE = /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
// erf by Abramowitz and Stegun 7.1.26 (error below 1.5e-7)
fn erfAs(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
    + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
fn act(x: f32) -> f32 {
  if (p.c == 0u) { return x / (1.0 + exp(-x)); }
  if (p.c == 1u) {
    let inner = (x + 0.044715 * x * x * x) * 0.7978845608028654;
    return 0.5 * x * (1.0 + tanh(clamp(inner, -15.0, 15.0)));
  }
  return 0.5 * x * (1.0 + erfAs(x * 0.7071067811865476));
}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * 65535u * 64u;
  if (i >= p.a) { return; }
  let at = p.e + i;
  if (p.b == 0u) {
    a[at] = a[at] + b[i];
  } else if (p.b == 1u) {
    var v = act(a[at]);
    if (p.d == 0u) { v = v * b[i]; }
    a[at] = v;
  } else {
    a[at] = tanh(clamp(a[at] / p.fa, -15.0, 15.0)) * p.fa;
  }
}`
