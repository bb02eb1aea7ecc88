import type { StorageDtype } from './dtype.js'

/** index.json "version" this package reads and writes (LARQL vindex v2). */
export const VINDEX_VERSION = 2

export const FILES = {
  index: 'index.json',
  gateVectors: 'gate_vectors.bin',
  embeddings: 'embeddings.bin',
  downMeta: 'down_meta.bin',
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  generationConfig: 'generation_config.json',
  weightManifest: 'weight_manifest.json',
} as const

/** "DMET" read as a little-endian u32 (bytes on disk: 54 45 4D 44, "TEMD"). */
export const DOWN_META_MAGIC = 0x444d4554
export const DOWN_META_VERSION = 1
export const DOWN_META_HEADER_BYTES = 16

/** Extract levels, strictly increasing (LARQL's browse < attention < inference < all). */
export type ExtractLevel = 'browse' | 'attention' | 'inference' | 'all'
export const EXTRACT_LEVELS: readonly ExtractLevel[] = ['browse', 'attention', 'inference', 'all']

export function levelAtLeast(level: ExtractLevel, min: ExtractLevel): boolean {
  return EXTRACT_LEVELS.indexOf(level) >= EXTRACT_LEVELS.indexOf(min)
}

/** Inclusive [first, last] layer ranges. */
export interface LayerBands {
  syntax: [number, number]
  knowledge: [number, number]
  output: [number, number]
}

/** One layer's block inside gate_vectors.bin. */
export interface VindexLayerInfo {
  layer: number
  num_features: number
  /** Byte offset of the layer's [num_features x hidden_size] block. */
  offset: number
  /** Byte length: num_features * hidden_size * bytes per element. */
  length: number
  num_experts?: number
  num_features_per_expert?: number
}

/** One tensor inside one of the inference weight files (LARQL WeightEntry). */
export interface WeightEntry {
  key: string
  /** "tensor" (2-D, row-major [out, in]) or "vector" (1-D). */
  kind: 'tensor' | 'vector'
  shape: number[]
  offset: number
  length: number
  file: string
}

/** LARQL's VindexModelConfig, plus fields LARQL ignores (marked). */
export interface VindexModelConfig {
  model_type: string
  head_dim: number
  num_q_heads: number
  num_kv_heads: number
  rope_base: number
  sliding_window?: number | null
  layer_types?: string[]
  sliding_window_pattern?: number
  rope_local_base?: number
  query_pre_attn_scalar?: number
  final_logit_softcapping?: number
  attn_logit_softcapping?: number
  norm_eps?: number
  attention_bias?: boolean
  hidden_act?: string
  max_position_embeddings?: number
  rope_scaling?: Record<string, unknown>
  tie_word_embeddings?: boolean
  /** pglite-infer extension: layernorm (GPT-2) or rmsnorm. */
  norm_type?: 'rmsnorm' | 'layernorm'
  /** pglite-infer extension: Gemma's (1 + w) norm weights. */
  norm_weight_offset?: number
  /** pglite-infer extension: "rope" or "learned" (GPT-2). */
  position_embedding?: 'rope' | 'learned'
  /** pglite-infer extension: per-head q/k RMSNorm. */
  qk_norm?: boolean
  /** pglite-infer extension: o_proj / c_proj bias. */
  attention_output_bias?: boolean
  mlp_bias?: boolean
  /** pglite-infer extension: Gemma's pre/post feed-forward norms. */
  sandwich_norms?: boolean
  /** pglite-infer extension: "gated" (gate/up/down) or "plain" (GPT-2). */
  ffn_type?: 'gated' | 'plain'
  bos_token_id?: number | null
  eos_token_id?: number | number[] | null
}

export interface VindexSourceInfo {
  huggingface_repo: string | null
  huggingface_revision: string | null
  safetensors_sha256: string | null
  extracted_at: string
  larql_version: string
}

/** index.json, field names exactly as LARQL's VindexConfig serialises them. */
export interface VindexIndex {
  version: number
  model: string
  family: string
  source?: VindexSourceInfo | null
  /** file name -> lowercase hex sha256, for every file but index.json. */
  checksums?: Record<string, string> | null
  num_layers: number
  hidden_size: number
  intermediate_size: number
  vocab_size: number
  embed_scale: number
  extract_level: ExtractLevel
  dtype: StorageDtype
  quant?: 'none'
  layer_bands?: LayerBands | null
  layers: VindexLayerInfo[]
  down_top_k: number
  has_model_weights?: boolean
  model_config?: VindexModelConfig | null
  /** pglite-infer extension: the weight manifest, also in weight_manifest.json. */
  weights?: WeightEntry[]
}

/**
 * LARQL's LayerBands::for_family: probe-validated bands for known model
 * sizes, else 40% / 40% / 20% for 8+ layers, else none.
 */
export function layerBandsFor(family: string, numLayers: number): LayerBands | null {
  const known = KNOWN_BANDS[`${family}:${numLayers}`]
  if (known)
    return {
      syntax: [known[0], known[1]],
      knowledge: [known[2], known[3]],
      output: [known[4], known[5]],
    }
  if (numLayers < 8) return null
  const syntaxEnd = Math.floor((numLayers * 2) / 5)
  const knowledgeEnd = Math.floor((numLayers * 4) / 5)
  return {
    syntax: [0, Math.max(syntaxEnd - 1, 0)],
    knowledge: [syntaxEnd, Math.max(knowledgeEnd - 1, 0)],
    output: [knowledgeEnd, numLayers - 1],
  }
}

const KNOWN_BANDS: Record<string, [number, number, number, number, number, number]> = {
  'gemma3:34': [0, 13, 14, 27, 28, 33],
  'gemma3:42': [0, 16, 17, 34, 35, 41],
  'gemma2:26': [0, 10, 11, 20, 21, 25],
  'gemma2:42': [0, 16, 17, 34, 35, 41],
  'gemma2:46': [0, 18, 19, 37, 38, 45],
  'llama:32': [0, 12, 13, 25, 26, 31],
  'llama:40': [0, 15, 16, 32, 33, 39],
  'llama:80': [0, 31, 32, 63, 64, 79],
  'mistral:32': [0, 12, 13, 25, 26, 31],
  'qwen2:28': [0, 10, 11, 22, 23, 27],
  'qwen2:32': [0, 12, 13, 25, 26, 31],
  'qwen2:40': [0, 15, 16, 32, 33, 39],
  'qwen2:64': [0, 25, 26, 51, 52, 63],
  'qwen2:80': [0, 31, 32, 63, 64, 79],
  'gpt2:12': [0, 4, 5, 9, 10, 11],
  'gpt2:24': [0, 9, 10, 19, 20, 23],
  'gpt2:36': [0, 14, 15, 28, 29, 35],
  'gpt2:48': [0, 19, 20, 38, 39, 47],
}

/** Bytes of one down_meta record: top id, c_score, then k (id, logit) pairs. */
export function downMetaRecordBytes(topK: number): number {
  return 8 + 8 * topK
}

/** Total down_meta.bin size for the given per-layer feature counts. */
export function downMetaFileBytes(featuresPerLayer: number[], topK: number): number {
  const rec = downMetaRecordBytes(topK)
  return DOWN_META_HEADER_BYTES + featuresPerLayer.reduce((s, n) => s + 4 + n * rec, 0)
}

/** Pads a byte count up to the 4-byte alignment every block starts on. */
export function align4(n: number): number {
  return (n + 3) & ~3
}
