import type { ModelConfig, ModelFamily } from './config.js'
import { SUPPORTED_FAMILIES } from './config.js'
import { VindexError } from './errors.js'
import type { VindexIndex, VindexModelConfig } from './format.js'

/** ModelConfig -> index.json's model_config (LARQL fields + extensions). */
export function toVindexModelConfig(c: ModelConfig): VindexModelConfig {
  const m: VindexModelConfig = {
    model_type: c.modelType,
    head_dim: c.headDim,
    num_q_heads: c.numHeads,
    num_kv_heads: c.numKvHeads,
    rope_base: c.ropeTheta ?? 0,
    sliding_window: c.slidingWindow,
    norm_eps: c.normEps,
    attention_bias: c.attentionBias,
    hidden_act: c.activation,
    tie_word_embeddings: c.tieWordEmbeddings,
    norm_type: c.normType,
    norm_weight_offset: c.normWeightOffset,
    position_embedding: c.positionEmbedding,
    qk_norm: c.qkNorm,
    attention_output_bias: c.attentionOutputBias,
    mlp_bias: c.mlpBias,
    sandwich_norms: c.sandwichNorms,
    ffn_type: c.ffnType,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
  }
  // LARQL omits absent optionals; do the same so both tools write alike.
  if (c.layerTypes) m.layer_types = c.layerTypes
  if (c.slidingWindowPattern !== null) m.sliding_window_pattern = c.slidingWindowPattern
  if (c.ropeLocalTheta !== null) m.rope_local_base = c.ropeLocalTheta
  if (c.queryPreAttnScalar !== null) m.query_pre_attn_scalar = c.queryPreAttnScalar
  if (c.finalLogitSoftcapping !== null) m.final_logit_softcapping = c.finalLogitSoftcapping
  if (c.attnLogitSoftcapping !== null) m.attn_logit_softcapping = c.attnLogitSoftcapping
  if (c.maxPositionEmbeddings !== null) m.max_position_embeddings = c.maxPositionEmbeddings
  if (c.ropeScaling) m.rope_scaling = c.ropeScaling
  return m
}

/**
 * Rebuilds a ModelConfig from index.json. Fields LARQL does not write are
 * derived from the family, so LARQL-made vindexes load too.
 */
export function modelConfigFromIndex(index: VindexIndex): ModelConfig {
  const family = index.family as ModelFamily
  if (!SUPPORTED_FAMILIES.includes(family)) {
    throw new VindexError('UNSUPPORTED_ARCHITECTURE', `unsupported model family ${index.family}`, {
      file: 'index.json',
      expected: SUPPORTED_FAMILIES.join(', '),
      found: index.family,
    })
  }
  const m: Partial<VindexModelConfig> = index.model_config ?? {}
  const gemma = family === 'gemma2' || family === 'gemma3'
  const gpt2 = family === 'gpt2'
  const heads = m.num_q_heads ?? 1
  return {
    family,
    modelType: m.model_type ?? family,
    architectures: [],
    numLayers: index.num_layers,
    hiddenSize: index.hidden_size,
    intermediateSize: index.intermediate_size,
    numHeads: heads,
    numKvHeads: m.num_kv_heads ?? heads,
    headDim: m.head_dim ?? index.hidden_size / heads,
    vocabSize: index.vocab_size,
    maxPositionEmbeddings: m.max_position_embeddings ?? null,
    positionEmbedding: m.position_embedding ?? (gpt2 ? 'learned' : 'rope'),
    ropeTheta: gpt2 ? null : (m.rope_base ?? 10_000),
    ropeLocalTheta: m.rope_local_base ?? null,
    ropeScaling: (m.rope_scaling as ModelConfig['ropeScaling']) ?? null,
    normType: m.norm_type ?? (gpt2 ? 'layernorm' : 'rmsnorm'),
    normEps: m.norm_eps ?? (gpt2 ? 1e-5 : 1e-6),
    normWeightOffset: (m.norm_weight_offset ?? (gemma ? 1 : 0)) === 1 ? 1 : 0,
    activation: m.hidden_act ?? (gemma ? 'gelu_pytorch_tanh' : gpt2 ? 'gelu_new' : 'silu'),
    ffnType: m.ffn_type ?? (gpt2 ? 'plain' : 'gated'),
    tieWordEmbeddings: m.tie_word_embeddings ?? (gemma || gpt2),
    attentionBias: m.attention_bias ?? (family === 'qwen2' || gpt2),
    attentionOutputBias: m.attention_output_bias ?? gpt2,
    mlpBias: m.mlp_bias ?? gpt2,
    qkNorm: m.qk_norm ?? (family === 'qwen3' || family === 'gemma3'),
    sandwichNorms: m.sandwich_norms ?? gemma,
    embedScale: index.embed_scale,
    slidingWindow: m.sliding_window ?? null,
    slidingWindowPattern: m.sliding_window_pattern ?? null,
    layerTypes: m.layer_types ?? null,
    queryPreAttnScalar: m.query_pre_attn_scalar ?? null,
    attnLogitSoftcapping: m.attn_logit_softcapping ?? null,
    finalLogitSoftcapping: m.final_logit_softcapping ?? null,
    bosTokenId: m.bos_token_id ?? null,
    eosTokenId: m.eos_token_id ?? null,
    torchDtype: null,
  }
}
