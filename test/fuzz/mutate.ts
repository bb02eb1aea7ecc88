/**
 * Seeded vindex mutations. makeCase(seed, index, bases) is a pure function:
 * the same seed and case index give the same base, mode, mutations and bytes
 * on every machine, so a finding is reproduced by `npm run fuzz -- --seed S
 * --case I`.
 *
 * Every mutation says what an honest reader may do with it:
 *   - neutral: the vindex means the same (must load and answer the same);
 *   - plausible: a possibly valid but different vindex (any outcome is fine,
 *     except an unclean error or a hang/crash);
 *   - corrupt: invalid by docs/vindex-format.md (a load is fine only if every
 *     answer is the same as the unmutated vindex's);
 *   - mustReject: a file escapes the vindex directory (any load is a finding).
 */
import { createHash } from 'node:crypto'
import { prng } from '../vindex/tiny-checkpoints.js'
import type { Base, Level } from './bases.js'

export type Severity = 'neutral' | 'plausible' | 'corrupt'

export interface FuzzCase {
  seed: number
  index: number
  base: string
  level: Level
  /** files: createModel loads it; index: createModel writes it, CREATE INDEX loads it. */
  mode: 'files' | 'index'
  files: Map<string, Uint8Array>
  /** Names in the vindex directory that are symbolic links (to CANARY-relative targets). */
  symlinks: Map<string, string>
  /** Names in the vindex directory that are directories instead of files. */
  dirs: string[]
  severity: Severity
  mustReject: boolean
  mutations: string[]
}

/** Replaced by the worker with the absolute canary directory of the base. */
export const CANARY_ABS = '@@CANARY_ABS@@'
/** The canary directory of a base, relative to infer.data_directory. */
export const canaryDir = (base: string): string => `fuzz-canary-${base}`

const td = new TextDecoder()
const te = new TextEncoder()
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type Obj = { [k: string]: Json }

class Ctx {
  mutations: string[] = []
  severity: Severity = 'neutral'
  mustReject = false
  symlinks = new Map<string, string>()
  dirs: string[] = []
  constructor(
    readonly rand: () => number,
    readonly base: Base,
    readonly files: Map<string, Uint8Array>,
  ) {}
  int(n: number): number {
    return Math.floor(this.rand() * n)
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!
  }
  chance(p: number): boolean {
    return this.rand() < p
  }
  note(what: string, severity: Severity): void {
    this.mutations.push(what)
    const rank = { neutral: 0, plausible: 1, corrupt: 2 }
    if (rank[severity] > rank[this.severity]) this.severity = severity
  }
  index(): Obj | undefined {
    try {
      const v = JSON.parse(td.decode(this.files.get('index.json')!))
      return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined
    } catch {
      return undefined
    }
  }
  setIndex(ix: Obj, indent = 2): void {
    this.files.set('index.json', te.encode(JSON.stringify(ix, null, indent)))
  }
  /** Recompute checksums[file] (an attacker who keeps checksums consistent). */
  rehash(file: string): void {
    const ix = this.index()
    const data = this.files.get(file)
    if (!ix || !data || !ix.checksums || typeof ix.checksums !== 'object') return
    ;(ix.checksums as Obj)[file] = sha256(data)
    this.setIndex(ix)
  }
}

const FAMILIES = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'gpt2']
const BAD_VALUES: Json[] = [
  0,
  -1,
  -2147483648,
  2147483647,
  4294967296,
  9007199254740993,
  1e308,
  -0.5,
  0.5,
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '',
  '12',
  null,
  true,
  [],
  {},
]
const show = (v: Json | undefined): string => (v === undefined ? 'absent' : JSON.stringify(v))
const isNum = (v: Json | undefined): v is number => typeof v === 'number' && Number.isFinite(v)

/** Is a changed value of a numeric field possibly valid (else corrupt)? */
function plausibleValue(path: string[], v: Json, base: Base): boolean {
  const key = path[path.length - 1]!
  const inConfig = path[0] === 'model_config'
  if (key.endsWith('_token_id'))
    return v === null || (Number.isInteger(v) && (v as number) >= 0 && (v as number) < base.vocab)
  if (key === 'sliding_window') return v === null || (Number.isInteger(v) && (v as number) >= 0)
  if (key === 'max_position_embeddings') return v === null || Number.isInteger(v)
  if (key === 'norm_weight_offset') return v === 0 || v === 1
  if (key === 'norm_eps') return isNum(v) && v >= 0 && v <= 1
  if (key === 'rope_base' || key === 'rope_local_base')
    return base.family === 'gpt2' ? v === 0 || v === null : isNum(v) && v >= 1
  if (key === 'embed_scale') return isNum(v) && v > 0 && v < 1e6
  if (/softcapping|query_pre_attn_scalar/.test(key)) return v === null || (isNum(v) && v >= 0)
  if (inConfig && key === 'factor') return isNum(v) && v > 0
  return false
}

/** Every path (keys) in a JSON value, with the value. */
function paths(v: Json, at: string[] = [], out: [string[], Json][] = []): [string[], Json][] {
  if (v && typeof v === 'object') {
    for (const [k, c] of Array.isArray(v)
      ? v.map((c, i) => [String(i), c] as const)
      : Object.entries(v)) {
      out.push([[...at, k], c])
      paths(c, [...at, k], out)
    }
  }
  return out
}
function parentOf(root: Obj, path: string[]): Obj | Json[] | undefined {
  let v: Json = root
  for (const k of path.slice(0, -1)) {
    if (!v || typeof v !== 'object') return undefined
    v = Array.isArray(v) ? v[Number(k)]! : v[k]!
  }
  return v && typeof v === 'object' ? v : undefined
}
function setAt(root: Obj, path: string[], value: Json | undefined): void {
  const p = parentOf(root, path)
  const k = path[path.length - 1]!
  if (!p) return
  if (Array.isArray(p)) {
    if (value === undefined) p.splice(Number(k), 1)
    else p[Number(k)] = value
  } else if (value === undefined) delete p[k]
  else p[k] = value
}
const skipPath = (p: string[]): boolean => p[0] === 'source' || p[0] === 'checksums'

// ---------------------------------------------------------------- index.json

function numericLeaf(c: Ctx): void {
  const ix = c.index()
  if (!ix) return
  const leaves = paths(ix).filter(([p, v]) => typeof v === 'number' && !skipPath(p))
  if (!leaves.length) return
  const [path, old] = c.pick(leaves)
  let v = c.pick(BAD_VALUES)
  if (JSON.stringify(v) === JSON.stringify(old)) v = -1
  setAt(ix, path, v)
  c.setIndex(ix)
  c.note(
    `index.json ${path.join('.')}: ${show(old)} -> ${show(v)}`,
    plausibleValue(path, v, c.base) ? 'plausible' : 'corrupt',
  )
}

const REQUIRED_TOP = [
  'version',
  'family',
  'num_layers',
  'hidden_size',
  'intermediate_size',
  'vocab_size',
  'extract_level',
  'dtype',
  'layers',
  'down_top_k',
]

function deleteKey(c: Ctx): void {
  const ix = c.index()
  if (!ix) return
  const all = paths(ix).filter(
    ([p]) => !(p[0] === 'source' && p.length > 1) && !(p[0] === 'checksums' && p.length > 1),
  )
  const [path] = c.pick(all)
  setAt(ix, path, undefined)
  c.setIndex(ix)
  let sev: Severity = 'corrupt'
  if (path.length === 1) {
    const inference = c.base.level === 'inference'
    if (
      !REQUIRED_TOP.includes(path[0]!) &&
      !(inference && (path[0] === 'weights' || path[0] === 'model_config'))
    )
      sev = 'plausible'
  } else if (path[0] === 'model_config') sev = 'plausible' // readers derive what is missing
  c.note(`index.json delete ${path.join('.')}`, sev)
}

function typeSwap(c: Ctx): void {
  const ix = c.index()
  if (!ix) return
  const nodes = paths(ix).filter(([p, v]) => v !== null && typeof v === 'object' && !skipPath(p))
  if (!nodes.length) return
  const [path, v] = c.pick(nodes)
  const swapped: Json = Array.isArray(v)
    ? Object.fromEntries(v.map((x, i) => [String(i), x]))
    : Object.values(v as Obj)
  setAt(ix, path, swapped)
  c.setIndex(ix)
  c.note(
    `index.json ${path.join('.')}: ${Array.isArray(v) ? 'array -> object' : 'object -> array'}`,
    'corrupt',
  )
}

function layersEdit(c: Ctx): void {
  const ix = c.index()
  const layers = ix?.layers
  if (!ix || !Array.isArray(layers) || layers.length < 2) return
  const L = layers as Obj[]
  const i = c.int(L.length)
  const e = L[i]!
  const edits: [string, () => void][] = [
    ['swap layers[0] and layers[1]', () => ([L[0], L[1]] = [L[1]!, L[0]!])],
    ['drop the last layers[] entry', () => void L.pop()],
    [`duplicate layers[${i}]`, () => void L.splice(i, 0, { ...e })],
    [
      `layers[${i}].offset = layers[${(i + 1) % L.length}].offset`,
      () => (e.offset = L[(i + 1) % L.length]!.offset!),
    ],
    [`layers[${i}].num_features + 1`, () => (e.num_features = (e.num_features as number) + 1)],
    [`layers[${i}].num_features - 1`, () => (e.num_features = (e.num_features as number) - 1)],
    [`layers[${i}].length + 2`, () => (e.length = (e.length as number) + 2)],
    [`layers[${i}].offset + 2`, () => (e.offset = (e.offset as number) + 2)],
    [`layers[${i}].layer = 7`, () => (e.layer = 7)],
    [`layers[${i}].num_features = 0, length = 0`, () => ((e.num_features = 0), (e.length = 0))],
    ['reverse layers[]', () => void L.reverse()],
  ]
  const [what, run] = c.pick(edits)
  run()
  c.setIndex(ix)
  c.note(`index.json ${what}`, 'corrupt')
}

const WEIGHT_FILES = [
  'attn_weights.bin',
  'up_weights.bin',
  'down_weights.bin',
  'norms.bin',
  'lm_head.bin',
  'position_embeddings.bin',
]

function weightsEdit(c: Ctx): void {
  const ix = c.index()
  const ws = ix?.weights
  if (!ix || !Array.isArray(ws) || !ws.length) return
  const W = ws as Obj[]
  const i = c.int(W.length)
  const e = W[i]!
  const f = String(e.file)
  const flen = c.files.get(f)?.byteLength ?? 0
  const others = [...c.files.keys()].filter((n) => n !== f && n.endsWith('.bin'))
  const other = c.pick(others.length ? others : ['embeddings.bin'])
  const prev = W[(i + W.length - 1) % W.length]!
  const k = String(e.key)
  const edits: [string, Severity, boolean, () => void][] = [
    [`offset -1`, 'corrupt', false, () => (e.offset = -1)],
    [`offset -4`, 'corrupt', false, () => (e.offset = -4)],
    [`offset + 1 (misaligned)`, 'corrupt', false, () => (e.offset = (e.offset as number) + 1)],
    [`offset + 2 (misaligned)`, 'corrupt', false, () => (e.offset = (e.offset as number) + 2)],
    [
      `offset + 4 (overlaps the next)`,
      'corrupt',
      false,
      () => (e.offset = (e.offset as number) + 4),
    ],
    [`offset = the previous entry's (overlap)`, 'corrupt', false, () => (e.offset = prev.offset!)],
    [`offset = file length ${flen}`, 'corrupt', false, () => (e.offset = flen)],
    [`offset = 2^32`, 'corrupt', false, () => (e.offset = 4294967296)],
    [`length 0`, 'corrupt', false, () => (e.length = 0)],
    [`length x2`, 'corrupt', false, () => (e.length = (e.length as number) * 2)],
    [`length - 4`, 'corrupt', false, () => (e.length = (e.length as number) - 4)],
    [`shape reversed`, 'corrupt', false, () => (e.shape = [...(e.shape as number[])].reverse())],
    [
      `shape flattened`,
      'corrupt',
      false,
      () => (e.shape = [(e.shape as number[]).reduce((a, b) => a * b, 1)]),
    ],
    [`shape [0, ...]`, 'corrupt', false, () => (e.shape = [0, ...(e.shape as number[]).slice(1)])],
    [`file = ${other}`, 'corrupt', false, () => (e.file = other)],
    [`file = index.json`, 'corrupt', false, () => (e.file = 'index.json')],
    [`file = tokenizer.json`, 'corrupt', false, () => (e.file = 'tokenizer.json')],
    [`file = ""`, 'corrupt', false, () => (e.file = '')],
    [`file = missing.bin`, 'corrupt', false, () => (e.file = 'missing.bin')],
    [`file = 42`, 'corrupt', false, () => (e.file = 42)],
    [
      `file = ../${canaryDir(c.base.name)}/${f} (escapes; same bytes)`,
      'plausible',
      true,
      () => (e.file = `../${canaryDir(c.base.name)}/${f}`),
    ],
    [
      `file = ${CANARY_ABS}/${f} (absolute; same bytes)`,
      'plausible',
      true,
      () => (e.file = `${CANARY_ABS}/${f}`),
    ],
    [
      `file = ../../../../../etc/passwd`,
      'plausible',
      true,
      () => (e.file = '../../../../../etc/passwd'),
    ],
    [`file = /etc/passwd`, 'plausible', true, () => (e.file = '/etc/passwd')],
    [`file = /dev/zero`, 'plausible', true, () => (e.file = '/dev/zero')],
    [`file = ./${f}`, 'plausible', false, () => (e.file = `./${f}`)],
    [`key renamed to the previous entry's`, 'corrupt', false, () => (e.key = prev.key!)],
    [`key = bogus.weight`, 'corrupt', false, () => (e.key = 'bogus.weight')],
    [
      `kind ${e.kind} -> ${e.kind === 'tensor' ? 'vector' : 'tensor'}`,
      'corrupt',
      false,
      () => (e.kind = e.kind === 'tensor' ? 'vector' : 'tensor'),
    ],
    [`entry removed`, 'corrupt', false, () => void W.splice(i, 1)],
    [`entry duplicated`, 'corrupt', false, () => void W.splice(i, 0, { ...e })],
    [`entries shuffled`, 'neutral', false, () => W.sort(() => c.rand() - 0.5)],
  ]
  const [what, sev, escape, run] = c.pick(edits)
  run()
  c.setIndex(ix)
  if (escape) c.mustReject = true
  c.note(`index.json weights[${i}] (${k}) ${what}`, sev)
}

function modelConfigEdit(c: Ctx): void {
  const ix = c.index()
  if (!ix) return
  const mc = ix.model_config
  if (!mc || typeof mc !== 'object' || Array.isArray(mc)) return
  const cfg = mc as Obj
  const fam = String(ix.family)
  type Edit = [path: string[], values: Json[], ok: (v: Json) => boolean]
  const heads = (k: string): Edit => {
    const x = cfg[k] as number
    return [['model_config', k], [0, -1, 1, 3, x * 2, x / 2, 1e9, '4', null], () => false]
  }
  const toggles = [
    'qk_norm',
    'attention_bias',
    'attention_output_bias',
    'mlp_bias',
    'sandwich_norms',
    'tie_word_embeddings',
  ]
  const edits: Edit[] = [
    [['family'], [...FAMILIES, 'bogus', '', 42, null], () => false],
    [['model_config', 'model_type'], [...FAMILIES, 'bogus', 42, null], () => false],
    [
      ['model_config', 'position_embedding'],
      ['rope', 'learned', 'none', '', 5, null],
      (v) => v === null,
    ],
    [['model_config', 'ffn_type'], ['gated', 'plain', 'moe', null], (v) => v === null],
    [
      ['model_config', 'norm_type'],
      ['rmsnorm', 'layernorm', [], 'batchnorm', null],
      (v) => v === null,
    ],
    heads('num_q_heads'),
    heads('head_dim'),
    heads('num_kv_heads'),
    [
      ['model_config', 'norm_eps'],
      [0, -1, 2147483647, 1e308, 'NaN', '1e-5', null],
      (v) => v === 0 || v === null,
    ],
    [
      ['model_config', 'rope_base'],
      [0, -0.5, -1, 'x', 1e-30, null],
      (v) => v === null || (fam === 'gpt2' && v === 0),
    ],
    [['embed_scale'], [0, -1, 1e30, 'NaN', null, 0.5, 2], (v) => v === 0.5 || v === 2],
    [
      ['model_config', 'max_position_embeddings'],
      [0, -1, null, 1, 2147483648, 'x'],
      (v) => v !== 'x',
    ],
    [
      ['model_config', 'hidden_act'],
      ['relu', 'gelu', 'silu', 'gelu_new', 'gelu_pytorch_tanh', 'bogus', 7],
      (v) => typeof v === 'string' && v !== 'bogus',
    ],
    [['model_config', 'bos_token_id'], [c.base.vocab, -1, 4294967296, 'x', 0], (v) => v === 0],
    [['model_config', 'eos_token_id'], [c.base.vocab, -1, 4294967296, 'x', 0], (v) => v === 0],
    [['model_config', 'norm_weight_offset'], [0, 1, -1, 0.5, 'x'], (v) => v === 0 || v === 1],
    [['model_config', c.pick(toggles)], [true, false, 'yes', 1, null], (v) => v === null],
  ]
  const [path, values, ok] = c.pick(edits)
  const old = path.length === 1 ? ix[path[0]!] : cfg[path[1]!]
  const v = c.pick(values.filter((x) => JSON.stringify(x) !== JSON.stringify(old)))
  setAt(ix, path, v === null && c.chance(0.5) ? undefined : v)
  // family and model_type move together half of the time
  if (path[0] === 'family' && typeof v === 'string' && c.chance(0.5)) cfg.model_type = v
  c.setIndex(ix)
  const sev: Severity = ok(v) ? 'plausible' : 'corrupt'
  c.note(`index.json ${path.join('.')}: ${show(old)} -> ${show(v)}`, sev)
}

function checksumsEdit(c: Ctx): void {
  const ix = c.index()
  if (!ix) return
  const cs = ix.checksums
  const names = cs && typeof cs === 'object' && !Array.isArray(cs) ? Object.keys(cs) : []
  const n = names.length ? c.pick(names) : 'gate_vectors.bin'
  const edits: [string, Severity, () => void][] = [
    ['checksums removed', 'plausible', () => delete ix.checksums],
    [`checksums.${n} removed`, 'plausible', () => void (names.length && delete (cs as Obj)[n])],
    [
      `checksums.${n} = 64 zeros`,
      'corrupt',
      () => void (names.length && ((cs as Obj)[n] = '0'.repeat(64))),
    ],
    [`checksums.${n} = "xyz"`, 'corrupt', () => void (names.length && ((cs as Obj)[n] = 'xyz'))],
    ['checksums = []', 'corrupt', () => (ix.checksums = [])],
    ['checksums = 5', 'corrupt', () => (ix.checksums = 5)],
    [
      'checksums.missing.bin added',
      'corrupt',
      () => void (names.length && ((cs as Obj)['missing.bin'] = '0'.repeat(64))),
    ],
  ]
  const [what, sev, run] = c.pick(edits)
  run()
  c.setIndex(ix)
  c.note(`index.json ${what}`, sev)
}

function neutralEdit(c: Ctx): void {
  const ix = c.index()
  if (!ix) return
  const edits: [string, () => void][] = [
    ['control (no change)', () => {}],
    ['index.json without indentation', () => c.setIndex(ix, 0)],
    [
      'index.json keys in reverse order',
      () => c.setIndex(Object.fromEntries(Object.entries(ix).reverse())),
    ],
    ['index.json unknown field x_fuzz', () => c.setIndex({ ...ix, x_fuzz: { a: [1, 2] } })],
    ['extra file notes.txt', () => void c.files.set('notes.txt', te.encode('hello'))],
  ]
  const [what, run] = c.pick(edits)
  run()
  c.note(what, 'neutral')
}

// ---------------------------------------------------------------- binary files

function downMetaTokens(c: Ctx): void {
  const dm = c.files.get('down_meta.bin')
  if (!dm || dm.byteLength < 24) return
  const b = dm.slice()
  const dv = new DataView(b.buffer)
  const topK = dv.getUint32(12, true)
  const R = 8 + 8 * topK
  const n0 = dv.getUint32(16, true)
  const f = c.int(Math.max(1, n0))
  const rec = 20 + f * R
  if (rec + R > b.byteLength) return
  const j = c.int(topK + 1) // 0: top_token_id, else entry j-1
  const at = j === 0 ? rec : rec + 8 + 8 * (j - 1)
  const v = c.pick([c.base.vocab, c.base.vocab + 1, 0x7fffffff, 0xffffffff])
  dv.setUint32(at, v, true)
  if (j === 0) dv.setUint32(rec + 8, v, true) // keep the record self-consistent
  c.files.set('down_meta.bin', b)
  const rehash = c.chance(0.5)
  if (rehash) c.rehash('down_meta.bin')
  c.note(
    `down_meta.bin layer 0 feature ${f} ${j === 0 ? 'top token' : `entry ${j - 1}`} id = ${v} (vocab ${c.base.vocab})${rehash ? ', checksum recomputed' : ''}`,
    'corrupt',
  )
}

const OPTIONAL_FILES = new Set([
  'tokenizer_config.json',
  'weight_manifest.json',
  'generation_config.json',
])

function byteMutation(c: Ctx): void {
  const names = [...c.files.keys()]
  const bins = names.filter((n) => n.endsWith('.bin'))
  const file = c.chance(0.7) ? c.pick(bins) : c.pick(names)
  const data = c.files.get(file)!
  let out = data.slice()
  let what: string
  let sev: Severity =
    file === 'index.json' ? 'plausible' : OPTIONAL_FILES.has(file) ? 'plausible' : 'corrupt'
  let rehash = false
  const k = c.int(9)
  if (k === 0 && out.length) {
    const flips = 1 + c.int(8)
    const at: number[] = []
    for (let i = 0; i < flips; i++) {
      const o = c.int(out.length)
      out[o]! ^= 1 << c.int(8)
      at.push(o)
    }
    what = `${flips} bit flip(s) at ${at.join(',')}`
  } else if (k === 1 && out.length) {
    const o = c.int(out.length)
    const n = 1 + c.int(16)
    const fill = c.pick(['random', 'zero', 'ff'] as const)
    for (let i = o; i < Math.min(out.length, o + n); i++)
      out[i] = fill === 'zero' ? 0 : fill === 'ff' ? 0xff : c.int(256)
    what = `${n} bytes overwritten (${fill}) at ${o}`
  } else if (k === 2) {
    const len = c.pick([0, 1, 4, c.int(out.length), Math.max(0, out.length - 1 - c.int(8))])
    out = out.slice(0, len)
    rehash = c.chance(0.5)
    what = `truncated to ${len} of ${data.length}`
  } else if (k === 3) {
    const n = c.pick([1, 2, 4, 7, 64, 4096])
    const ext = new Uint8Array(out.length + n)
    ext.set(out)
    if (c.chance(0.5)) for (let i = out.length; i < ext.length; i++) ext[i] = c.int(256)
    out = ext
    rehash = c.chance(0.5)
    what = `extended by ${n} bytes`
  } else if (k === 4) {
    c.files.delete(file)
    c.note(`${file} deleted`, sev)
    return
  } else if (k === 5) {
    const other = c.pick(
      names.filter((n) => n !== file).length ? names.filter((n) => n !== file) : names,
    )
    out = c.files.get(other)!.slice()
    what = `replaced by the bytes of ${other}`
  } else if (k === 6) {
    c.symlinks.set(file, `../${canaryDir(c.base.name)}/${file}`)
    c.files.delete(file)
    c.mustReject = true
    c.note(`${file} is a symlink to ../${canaryDir(c.base.name)}/${file} (same bytes)`, 'plausible')
    return
  } else if (k === 7) {
    c.dirs.push(file)
    c.files.delete(file)
    c.note(`${file} is a directory`, sev === 'plausible' ? 'plausible' : 'corrupt')
    return
  } else {
    out = new Uint8Array(out.length)
    for (let i = 0; i < out.length; i++) out[i] = c.int(256)
    what = `replaced by ${out.length} random bytes`
  }
  c.files.set(file, out)
  if (rehash && file !== 'index.json') c.rehash(file)
  if (file === 'index.json') {
    try {
      JSON.parse(td.decode(out))
    } catch {
      sev = 'corrupt' // no longer JSON: nothing may load
      c.mustReject = true
    }
  }
  c.note(`${file} ${what}${rehash && file !== 'index.json' ? ', checksum recomputed' : ''}`, sev)
}

function tokenizerEdit(c: Ctx): void {
  const raw = c.files.get('tokenizer.json')
  if (!raw) return
  let tok: Obj
  try {
    tok = JSON.parse(td.decode(raw))
  } catch {
    return
  }
  const model = tok.model as Obj | undefined
  const vocab = model?.vocab as Obj | undefined
  const edits: [string, () => void][] = [
    ['tokenizer.json model.vocab removed', () => void (model && delete model.vocab)],
    ['tokenizer.json model removed', () => void delete tok.model],
    ['tokenizer.json added_tokens = {}', () => (tok.added_tokens = {})],
    [
      'tokenizer.json a vocab id set to 99999999',
      () => {
        if (vocab && !Array.isArray(vocab)) {
          const keys = Object.keys(vocab)
          if (keys.length) vocab[keys[c.int(keys.length)]!] = 99999999
        }
      },
    ],
    ['tokenizer.json model.type = "Bogus"', () => void (model && (model.type = 'Bogus'))],
  ]
  const [what, run] = c.pick(edits)
  run()
  c.files.set('tokenizer.json', te.encode(JSON.stringify(tok)))
  c.note(`${what} (checksum not updated)`, 'corrupt')
}

// ---------------------------------------------------------------- a case

const STRUCTURED: [number, (c: Ctx) => void][] = [
  [6, numericLeaf],
  [3, deleteKey],
  [2, typeSwap],
  [3, layersEdit],
  [6, weightsEdit],
  [8, modelConfigEdit],
  [2, checksumsEdit],
  [3, downMetaTokens],
  [2, tokenizerEdit],
]

function weighted<T>(c: Ctx, xs: [number, T][]): T {
  const total = xs.reduce((a, [w]) => a + w, 0)
  let r = c.rand() * total
  for (const [w, x] of xs) if ((r -= w) < 0) return x
  return xs[xs.length - 1]![1]
}

/** Case `index` of run `seed`: deterministic. */
export function makeCase(seed: number, index: number, bases: Base[]): FuzzCase {
  const rand = prng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0)
  for (let i = 0; i < 4; i++) rand()
  const base = bases[Math.floor(rand() * bases.length)]!
  const files = new Map([...base.files].map(([k, v]) => [k, v.slice()]))
  const c = new Ctx(rand, base, files)
  const mode = c.chance(0.2) ? 'index' : 'files'
  const kind = c.rand()
  if (kind < 0.06) neutralEdit(c)
  else {
    const n = c.chance(0.75) ? 1 : 2 + c.int(2)
    for (let i = 0; i < n; i++) {
      if (c.chance(0.55)) weighted(c, STRUCTURED)(c)
      else byteMutation(c)
    }
    // a structured edit on an index.json that no longer parses does nothing
    if (!c.mutations.length) neutralEdit(c)
  }
  return {
    seed,
    index,
    base: base.name,
    level: base.level,
    mode,
    files,
    symlinks: c.symlinks,
    dirs: c.dirs,
    severity: c.severity,
    mustReject: c.mustReject,
    mutations: c.mutations,
  }
}

export function describeCase(k: FuzzCase): string {
  const flags = [k.severity, ...(k.mustReject ? ['must-reject'] : [])].join(',')
  return `base=${k.base} level=${k.level} mode=${k.mode} [${flags}] ${k.mutations.join('; ')}`
}
