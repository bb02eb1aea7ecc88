/**
 * infer() next to onnxruntime-web's CPU (WASM) backend on the same model and
 * prompt, in one run: the knowledge fixture (Qwen2, f32) as an ONNX graph
 * built here from the same safetensors weights (no exporter needed), and
 * pg_infer's forward pass inside PGlite. Both single-threaded.
 *
 *   npx tsx test/bench/infer-ort.bench.ts [--runs N]
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { Tokenizer } from '@huggingface/tokenizers'
import type { onnx as OnnxTypes } from 'onnx-proto'
import * as ort from 'onnxruntime-web'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { pgInfer } from '../helpers/db.js'
import { Checkpoint } from '../reference/safetensors.js'

// onnx-proto is CommonJS: load its value through require, its types from the import
const { onnx } = createRequire(import.meta.url)('onnx-proto') as typeof import('onnx-proto')

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '20' } } })
const RUNS = Number(args.runs)
const FIXTURE = fileURLToPath(new URL('../fixtures/models/knowledge-qwen2-6l', import.meta.url))
const PROMPT = 'The capital of France is Paris and the currency of Japan is the yen. People in'

interface Config {
  hidden_size: number
  num_attention_heads: number
  num_key_value_heads: number
  num_hidden_layers: number
  vocab_size: number
  rope_theta: number
  rms_norm_eps: number
}

/** A small ONNX graph builder: nodes, float initializers, fresh names. */
class Graph {
  nodes: OnnxTypes.INodeProto[] = []
  inits: OnnxTypes.ITensorProto[] = []
  private n = 0
  name(prefix: string): string {
    return `${prefix}_${this.n++}`
  }
  init(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const int64 = data instanceof BigInt64Array
    this.inits.push({
      name,
      dims,
      dataType: int64 ? onnx.TensorProto.DataType.INT64 : onnx.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    })
    return name
  }
  ints(values: number[]): string {
    return this.init(this.name('i64'), [values.length], BigInt64Array.from(values.map(BigInt)))
  }
  scalar(v: number): string {
    return this.init(this.name('c'), [], Float32Array.of(v))
  }
  op(type: string, inputs: string[], attrs: OnnxTypes.IAttributeProto[] = []): string {
    const out = this.name(type.toLowerCase())
    this.nodes.push({ opType: type, input: inputs, output: [out], attribute: attrs })
    return out
  }
}

const intAttr = (name: string, i: number): OnnxTypes.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INT,
  i,
})
const intsAttr = (name: string, ints: number[]): OnnxTypes.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INTS,
  ints,
})

/** [out, in] row-major -> [in, out], for MatMul(x, W^T). */
function transposed(data: Float64Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!
  return out
}

/** The Qwen2 forward pass for a fixed prompt length T, logits [1, T, vocab]. */
function buildQwen2(cfg: Config, ck: Checkpoint, T: number): Uint8Array {
  const g = new Graph()
  const H = cfg.hidden_size
  const nh = cfg.num_attention_heads
  const nkv = cfg.num_key_value_heads
  const hd = H / nh
  const w = (name: string) => ck.get(name)
  const linear = (x: string, key: string, bias: boolean): string => {
    const t = w(`${key}.weight`)
    const y = g.op('MatMul', [
      x,
      g.init(key, [t.shape[1]!, t.shape[0]!], transposed(t.data, t.shape[0]!, t.shape[1]!)),
    ])
    return bias
      ? g.op('Add', [
          y,
          g.init(`${key}.bias`, [t.shape[0]!], Float32Array.from(w(`${key}.bias`).data)),
        ])
      : y
  }
  const rmsnorm = (x: string, key: string): string => {
    const ms = g.op(
      'ReduceMean',
      [g.op('Mul', [x, x])],
      [intsAttr('axes', [-1]), intAttr('keepdims', 1)],
    )
    const inv = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.scalar(cfg.rms_norm_eps)])])])
    return g.op('Mul', [inv, g.init(key, [H], Float32Array.from(w(key).data))])
  }
  // RoPE tables (rotate_half layout), a causal mask, the attention scale
  const cos = new Float32Array(T * hd)
  const sin = new Float32Array(T * hd)
  for (let p = 0; p < T; p++)
    for (let i = 0; i < hd / 2; i++) {
      const a = p / Math.pow(cfg.rope_theta, (2 * i) / hd)
      cos[p * hd + i] = cos[p * hd + i + hd / 2] = Math.cos(a)
      sin[p * hd + i] = sin[p * hd + i + hd / 2] = Math.sin(a)
    }
  const cosT = g.init('rope_cos', [T, hd], cos)
  const sinT = g.init('rope_sin', [T, hd], sin)
  const mask = new Float32Array(T * T)
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -1e9
  const maskT = g.init('causal_mask', [T, T], mask)
  const scale = g.scalar(1 / Math.sqrt(hd))
  const heads = (x: string, n: number) =>
    g.op(
      'Transpose',
      [g.op('Reshape', [x, g.ints([1, T, n, hd])])],
      [intsAttr('perm', [0, 2, 1, 3])],
    )
  const rope = (x: string): string => {
    const x1 = g.op('Slice', [x, g.ints([0]), g.ints([hd / 2]), g.ints([3])])
    const x2 = g.op('Slice', [x, g.ints([hd / 2]), g.ints([hd]), g.ints([3])])
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], [intAttr('axis', 3)])
    return g.op('Add', [g.op('Mul', [x, cosT]), g.op('Mul', [rot, sinT])])
  }
  const repeatKv = (x: string): string => {
    const rep = nh / nkv
    if (rep === 1) return x
    const x5 = g.op('Reshape', [x, g.ints([1, nkv, 1, T, hd])])
    const cat = g.op('Concat', Array(rep).fill(x5), [intAttr('axis', 2)])
    return g.op('Reshape', [cat, g.ints([1, nh, T, hd])])
  }

  const embed = w('model.embed_tokens.weight')
  let x = g.op('Gather', [
    g.init('embed', [embed.shape[0]!, H], Float32Array.from(embed.data)),
    'input_ids',
  ])
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}`
    const h = rmsnorm(x, `${p}.input_layernorm.weight`)
    const q = rope(heads(linear(h, `${p}.self_attn.q_proj`, true), nh))
    const k = repeatKv(rope(heads(linear(h, `${p}.self_attn.k_proj`, true), nkv)))
    const v = repeatKv(heads(linear(h, `${p}.self_attn.v_proj`, true), nkv))
    const kT = g.op('Transpose', [k], [intsAttr('perm', [0, 1, 3, 2])])
    const s = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kT]), scale]), maskT])
    const att = g.op('MatMul', [g.op('Softmax', [s], [intAttr('axis', -1)]), v])
    const merged = g.op('Reshape', [
      g.op('Transpose', [att], [intsAttr('perm', [0, 2, 1, 3])]),
      g.ints([1, T, H]),
    ])
    x = g.op('Add', [x, linear(merged, `${p}.self_attn.o_proj`, false)])
    const h2 = rmsnorm(x, `${p}.post_attention_layernorm.weight`)
    const gate = linear(h2, `${p}.mlp.gate_proj`, false)
    const act = g.op('Mul', [
      g.op('Mul', [gate, g.op('Sigmoid', [gate])]),
      linear(h2, `${p}.mlp.up_proj`, false),
    ])
    x = g.op('Add', [x, linear(act, `${p}.mlp.down_proj`, false)])
  }
  const logits = linear(rmsnorm(x, 'model.norm.weight'), 'lm_head', false)
  g.nodes.push({ opType: 'Identity', input: [logits], output: ['logits'] })

  const tensorType = (elem: number, dims: number[]): OnnxTypes.ITypeProto => ({
    tensorType: { elemType: elem, shape: { dim: dims.map((d) => ({ dimValue: d })) } },
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'pglite-infer bench',
    graph: {
      name: 'qwen2',
      node: g.nodes,
      initializer: g.inits,
      input: [{ name: 'input_ids', type: tensorType(onnx.TensorProto.DataType.INT64, [1, T]) }],
      output: [
        {
          name: 'logits',
          type: tensorType(onnx.TensorProto.DataType.FLOAT, [1, T, cfg.vocab_size]),
        },
      ],
    },
  })
  return onnx.ModelProto.encode(model).finish()
}

function softmaxTop1(logits: Float32Array): { id: number; p: number } {
  let best = 0
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i
  let sum = 0
  for (const v of logits) sum += Math.exp(v - logits[best]!)
  return { id: best, p: 1 / sum }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const cfg = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Config
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8')),
  {},
)
const ids = tokenizer.encode(PROMPT).ids.slice(0, 16)
const prompt = tokenizer.decode(ids)
const T = ids.length

// onnxruntime-web, WASM backend, one thread
ort.env.wasm.numThreads = 1
const bytes = buildQwen2(cfg, new Checkpoint(FIXTURE), T)
const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] })
const feeds = { input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, T]) }
const runOrt = async () => {
  const out = await session.run(feeds)
  const data = out.logits!.data as Float32Array
  return data.subarray((T - 1) * cfg.vocab_size, T * cfg.vocab_size)
}
for (let i = 0; i < 3; i++) await runOrt()
const ortMs: number[] = []
let ortTop = { id: -1, p: 0 }
for (let i = 0; i < RUNS; i++) {
  const t = performance.now()
  ortTop = softmaxTop1(await runOrt())
  ortMs.push(performance.now() - t)
}

// pg_infer inside PGlite
const work = mkdtempSync(join(tmpdir(), 'pglite-infer-ort-'))
try {
  const vindex = join(work, 'model.vindex')
  await extractVindexDir(FIXTURE, vindex, { level: 'inference', dtype: 'f32', workers: 0 })
  const db = await PGlite.create({ extensions: { pgInfer } })
  await db.exec('CREATE EXTENSION pg_infer')
  await db.query("select infer_create_model('m', $1, 'inference')", [vindex])
  const q = () =>
    db.query<{ token: string; probability: number }>("select * from infer($1, 1, 'm')", [prompt])
  for (let i = 0; i < 3; i++) await q()
  const pgMs: number[] = []
  let pgTop = { token: '', probability: 0 }
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now()
    pgTop = (await q()).rows[0]!
    pgMs.push(performance.now() - t)
  }
  await db.close()

  const ortToken = tokenizer.decode([ortTop.id])
  console.log(
    `\ninfer() vs onnxruntime-web ${ort.env.versions.web} (wasm, 1 thread), knowledge-qwen2-6l f32, ${T}-token prompt, ${RUNS} runs\n`,
  )
  console.log('| engine | median ms | min ms | prefill tokens/s | top-1 token | probability |')
  console.log('|---|---:|---:|---:|---|---:|')
  console.log(
    `| pg_infer infer() in PGlite | ${median(pgMs).toFixed(2)} | ${Math.min(...pgMs).toFixed(2)} | ${(T / (median(pgMs) / 1000)).toFixed(0)} | ${JSON.stringify(pgTop.token)} | ${pgTop.probability.toFixed(6)} |`,
  )
  console.log(
    `| onnxruntime-web (graph built from the same weights) | ${median(ortMs).toFixed(2)} | ${Math.min(...ortMs).toFixed(2)} | ${(T / (median(ortMs) / 1000)).toFixed(0)} | ${JSON.stringify(ortToken)} | ${ortTop.p.toFixed(6)} |`,
  )
  console.log(
    `\nratio onnxruntime-web / infer(): ${(median(ortMs) / median(pgMs)).toFixed(2)} (infer() includes the SQL round trip and tokenization)`,
  )
} finally {
  rmSync(work, { recursive: true, force: true })
}
