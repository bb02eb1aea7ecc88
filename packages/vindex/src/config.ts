import { VindexError } from './errors.js'

export type ModelFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3' | 'gpt2'

export const SUPPORTED_FAMILIES: readonly ModelFamily[] = [
  'llama',
  'mistral',
  'qwen2',
  'qwen3',
  'gemma2',
  'gemma3',
  'gpt2',
]

/** RoPE scaling block as config.json spells it (rope_type/type, factor, ...). */
export type RopeScaling = Record<string, unknown> & { rope_type: string; factor?: number }

/**
 * A checkpoint's architecture, normalised across families. Everything a
 * forward pass needs to know that is not a tensor lives here.
 */
export interface ModelConfig {
  family: ModelFamily
  /** config.json's model_type (for Gemma 3 the text model's, e.g. "gemma3_text"). */
  modelType: string
  architectures: string[]
  numLayers: number
  hiddenSize: number
  intermediateSize: number
  numHeads: number
  numKvHeads: number
  headDim: number
  vocabSize: number
  maxPositionEmbeddings: number | null
  /** "rope" for every family but GPT-2, which learns absolute positions. */
  positionEmbedding: 'rope' | 'learned'
  /** Global RoPE base (null for GPT-2). */
  ropeTheta: number | null
  /** RoPE base for sliding-window layers (Gemma 3's rope_local_base_freq). */
  ropeLocalTheta: number | null
  ropeScaling: RopeScaling | null
  normType: 'rmsnorm' | 'layernorm'
  normEps: number
  /** Gemma scales by (1 + weight): 1 there, 0 elsewhere. */
  normWeightOffset: 0 | 1
  /** hidden_act / hidden_activation / activation_function verbatim. */
  activation: string
  /** Gated (SwiGLU/GeGLU: gate, up, down) or plain (GPT-2: c_fc, c_proj). */
  ffnType: 'gated' | 'plain'
  tieWordEmbeddings: boolean
  /** q/k/v(/o) projection biases present. */
  attentionBias: boolean
  /** Output projection bias present (GPT-2). */
  attentionOutputBias: boolean
  mlpBias: boolean
  /** Per-head RMSNorm on q and k (Qwen3, Gemma 3). */
  qkNorm: boolean
  /** Extra pre/post feed-forward norms around the MLP (Gemma 2/3). */
  sandwichNorms: boolean
  /** Token embeddings are multiplied by this before layer 0 (Gemma: sqrt(hidden)). */
  embedScale: number
  slidingWindow: number | null
  slidingWindowPattern: number | null
  layerTypes: string[] | null
  queryPreAttnScalar: number | null
  attnLogitSoftcapping: number | null
  finalLogitSoftcapping: number | null
  bosTokenId: number | null
  eosTokenId: number | number[] | null
  /** torch_dtype / dtype as declared, informational. */
  torchDtype: string | null
}

type Json = Record<string, unknown>

const ARCH_TO_FAMILY: Record<string, ModelFamily> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  Gemma2ForCausalLM: 'gemma2',
  Gemma3ForCausalLM: 'gemma3',
  Gemma3ForConditionalGeneration: 'gemma3',
  GPT2LMHeadModel: 'gpt2',
  GPT2Model: 'gpt2',
}

const MODEL_TYPE_TO_FAMILY: Record<string, ModelFamily> = {
  llama: 'llama',
  mistral: 'mistral',
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  gemma2: 'gemma2',
  gemma3: 'gemma3',
  gemma3_text: 'gemma3',
  gpt2: 'gpt2',
}

/** Picks the family from architectures[] first, model_type second. */
export function detectFamily(config: Json, file = 'config.json'): ModelFamily {
  const archs = Array.isArray(config.architectures) ? (config.architectures as string[]) : []
  for (const a of archs) {
    const f = ARCH_TO_FAMILY[a]
    if (f) return f
  }
  const mt = typeof config.model_type === 'string' ? config.model_type : undefined
  if (mt && MODEL_TYPE_TO_FAMILY[mt]) return MODEL_TYPE_TO_FAMILY[mt]!
  const named = archs[0] ?? mt ?? '(none declared)'
  throw new VindexError('UNSUPPORTED_ARCHITECTURE', `unsupported architecture ${named}`, {
    file,
    expected: `one of ${SUPPORTED_FAMILIES.join(', ')}`,
    found: named,
    hint: 'only Llama, Mistral, Qwen2, Qwen3, Gemma 2/3 and GPT-2 checkpoints can be extracted',
  })
}

/** Parses a HuggingFace config.json into a ModelConfig. */
export function parseModelConfig(config: Json, file = 'config.json'): ModelConfig {
  const family = detectFamily(config, file)
  // Gemma 3 multimodal checkpoints nest the language model's config.
  const c: Json =
    family === 'gemma3' && config.text_config && typeof config.text_config === 'object'
      ? { ...(config.text_config as Json), architectures: config.architectures }
      : config
  return family === 'gpt2' ? parseGpt2(c, file) : parseDecoder(c, family, file)
}

function parseDecoder(c: Json, family: ModelFamily, file: string): ModelConfig {
  const hidden = int(c, 'hidden_size', file)
  const heads = int(c, 'num_attention_heads', file)
  const isGemma = family === 'gemma2' || family === 'gemma3'
  const rope = ropeParams(c)
  return {
    family,
    modelType: str(c.model_type) ?? family,
    architectures: strList(c.architectures),
    numLayers: int(c, 'num_hidden_layers', file),
    hiddenSize: hidden,
    intermediateSize: int(c, 'intermediate_size', file),
    numHeads: heads,
    numKvHeads: optInt(c.num_key_value_heads) ?? heads,
    headDim: optInt(c.head_dim) ?? hidden / heads,
    vocabSize: int(c, 'vocab_size', file),
    maxPositionEmbeddings: optInt(c.max_position_embeddings),
    positionEmbedding: 'rope',
    ropeTheta: rope.theta ?? (family === 'gemma3' ? 1_000_000 : 10_000),
    ropeLocalTheta: num(c.rope_local_base_freq) ?? (family === 'gemma3' ? 10_000 : null),
    ropeScaling: rope.scaling,
    normType: 'rmsnorm',
    normEps: num(c.rms_norm_eps) ?? 1e-6,
    normWeightOffset: isGemma ? 1 : 0,
    activation:
      str(c.hidden_activation) ?? str(c.hidden_act) ?? (isGemma ? 'gelu_pytorch_tanh' : 'silu'),
    ffnType: 'gated',
    tieWordEmbeddings: bool(c.tie_word_embeddings) ?? (isGemma ? true : false),
    attentionBias: family === 'qwen2' ? true : (bool(c.attention_bias) ?? false),
    attentionOutputBias: family === 'qwen2' ? false : (bool(c.attention_bias) ?? false),
    mlpBias: bool(c.mlp_bias) ?? false,
    qkNorm: family === 'qwen3' || family === 'gemma3',
    sandwichNorms: isGemma,
    embedScale: isGemma ? Math.sqrt(hidden) : 1,
    slidingWindow: optInt(c.sliding_window),
    slidingWindowPattern: optInt(c.sliding_window_pattern),
    layerTypes: Array.isArray(c.layer_types) ? strList(c.layer_types) : null,
    queryPreAttnScalar: num(c.query_pre_attn_scalar),
    attnLogitSoftcapping: num(c.attn_logit_softcapping),
    finalLogitSoftcapping: num(c.final_logit_softcapping),
    bosTokenId: optInt(c.bos_token_id),
    eosTokenId: eos(c.eos_token_id),
    torchDtype: str(c.torch_dtype) ?? str(c.dtype),
  }
}

function parseGpt2(c: Json, file: string): ModelConfig {
  const hidden = int(c, 'n_embd', file)
  const heads = int(c, 'n_head', file)
  return {
    family: 'gpt2',
    modelType: str(c.model_type) ?? 'gpt2',
    architectures: strList(c.architectures),
    numLayers: int(c, 'n_layer', file),
    hiddenSize: hidden,
    // n_inner null means the classic 4 x hidden MLP.
    intermediateSize: optInt(c.n_inner) ?? 4 * hidden,
    numHeads: heads,
    numKvHeads: heads,
    headDim: hidden / heads,
    vocabSize: int(c, 'vocab_size', file),
    maxPositionEmbeddings: optInt(c.n_positions) ?? optInt(c.n_ctx),
    positionEmbedding: 'learned',
    ropeTheta: null,
    ropeLocalTheta: null,
    ropeScaling: null,
    normType: 'layernorm',
    normEps: num(c.layer_norm_epsilon) ?? 1e-5,
    normWeightOffset: 0,
    activation: str(c.activation_function) ?? 'gelu_new',
    ffnType: 'plain',
    tieWordEmbeddings: bool(c.tie_word_embeddings) ?? true,
    attentionBias: true,
    attentionOutputBias: true,
    mlpBias: true,
    qkNorm: false,
    sandwichNorms: false,
    embedScale: 1,
    slidingWindow: null,
    slidingWindowPattern: null,
    layerTypes: null,
    queryPreAttnScalar: null,
    attnLogitSoftcapping: null,
    finalLogitSoftcapping: null,
    bosTokenId: optInt(c.bos_token_id),
    eosTokenId: eos(c.eos_token_id),
    torchDtype: str(c.torch_dtype) ?? str(c.dtype),
  }
}

/**
 * transformers 4.x writes rope_theta + rope_scaling; 5.x writes
 * rope_parameters {rope_theta, rope_type, ...}. Accept both.
 */
function ropeParams(c: Json): { theta: number | null; scaling: RopeScaling | null } {
  const params =
    c.rope_parameters && typeof c.rope_parameters === 'object' ? (c.rope_parameters as Json) : null
  const theta = num(c.rope_theta) ?? (params ? num(params.rope_theta) : null)
  const raw = (
    c.rope_scaling && typeof c.rope_scaling === 'object' ? c.rope_scaling : params
  ) as Json | null
  if (!raw) return { theta, scaling: null }
  const type = str(raw.rope_type) ?? str(raw.type) ?? 'default'
  if (type === 'default') return { theta, scaling: null }
  const { rope_theta: _ignored, ...rest } = raw
  return { theta, scaling: { ...rest, rope_type: type } }
}

function int(c: Json, key: string, file: string): number {
  const v = c[key]
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new VindexError('INVALID_INDEX', `config field "${key}" must be a positive integer`, {
      file,
      expected: 'positive integer',
      found: v ?? 'missing',
    })
  }
  return v
}
function optInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) ? v : null
}
function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}
function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null
}
function bool(v: unknown): boolean | null {
  return typeof v === 'boolean' ? v : null
}
function strList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
}
function eos(v: unknown): number | number[] | null {
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number')
  return optInt(v)
}
