import type { ModelConfig } from './config.js'

/**
 * Where each role's tensor lives in a checkpoint, by normalized name (the
 * HuggingFace name minus its "model." / "transformer." wrapper prefix).
 */
export interface TensorRef {
  /** Normalized checkpoint name; also the key written to the weight manifest. */
  key: string
  /**
   * GPT-2 stores Conv1D weights as [in, out]; the vindex always stores
   * nn.Linear orientation [out, in], so these are transposed on extraction.
   */
  transpose: boolean
}

export function embedKey(cfg: ModelConfig): string {
  return cfg.family === 'gpt2' ? 'wte.weight' : 'embed_tokens.weight'
}

/**
 * The gate of a layer: a [features x hidden] matrix whose rows are the
 * feature detectors (mlp.gate_proj, or GPT-2's c_fc stored transposed).
 */
export function gateRef(cfg: ModelConfig, layer: number): TensorRef {
  return cfg.family === 'gpt2'
    ? { key: `h.${layer}.mlp.c_fc.weight`, transpose: true }
    : { key: `layers.${layer}.mlp.gate_proj.weight`, transpose: false }
}

/**
 * The down projection in nn.Linear orientation is [hidden x features]:
 * column f is what feature f writes. GPT-2's c_proj is stored [features x
 * hidden] already, i.e. feature-major, so it needs no transpose for
 * down_meta but does for the [out, in] weight file.
 */
export function downRef(cfg: ModelConfig, layer: number): TensorRef {
  return cfg.family === 'gpt2'
    ? { key: `h.${layer}.mlp.c_proj.weight`, transpose: true }
    : { key: `layers.${layer}.mlp.down_proj.weight`, transpose: false }
}

/** The files the inference weights are split into (LARQL's split format). */
export type WeightFile =
  | 'attn_weights.bin'
  | 'up_weights.bin'
  | 'down_weights.bin'
  | 'norms.bin'
  | 'lm_head.bin'
  | 'position_embeddings.bin'
  | 'extra_weights.bin'

export interface WeightRef extends TensorRef {
  file: WeightFile
  /** Absent tensors that are optional for the family are skipped silently. */
  optional?: boolean
}

/** Every per-layer tensor a forward pass needs besides the gate, in file order. */
export function layerWeightRefs(cfg: ModelConfig, layer: number): WeightRef[] {
  return cfg.family === 'gpt2' ? gpt2LayerRefs(layer) : decoderLayerRefs(cfg, layer)
}

function decoderLayerRefs(cfg: ModelConfig, i: number): WeightRef[] {
  const p = `layers.${i}`
  const attn = (key: string, optional = false): WeightRef => ({
    key,
    transpose: false,
    file: 'attn_weights.bin',
    optional,
  })
  const refs: WeightRef[] = [
    attn(`${p}.self_attn.q_proj.weight`),
    attn(`${p}.self_attn.k_proj.weight`),
    attn(`${p}.self_attn.v_proj.weight`),
    attn(`${p}.self_attn.o_proj.weight`),
  ]
  if (cfg.attentionBias) {
    refs.push(
      attn(`${p}.self_attn.q_proj.bias`),
      attn(`${p}.self_attn.k_proj.bias`),
      attn(`${p}.self_attn.v_proj.bias`),
    )
  }
  if (cfg.attentionOutputBias) refs.push(attn(`${p}.self_attn.o_proj.bias`))
  if (cfg.qkNorm)
    refs.push(attn(`${p}.self_attn.q_norm.weight`), attn(`${p}.self_attn.k_norm.weight`))
  refs.push({ key: `${p}.mlp.up_proj.weight`, transpose: false, file: 'up_weights.bin' })
  if (cfg.mlpBias) {
    refs.push({ key: `${p}.mlp.gate_proj.bias`, transpose: false, file: 'up_weights.bin' })
    refs.push({ key: `${p}.mlp.up_proj.bias`, transpose: false, file: 'up_weights.bin' })
  }
  refs.push({ key: `${p}.mlp.down_proj.weight`, transpose: false, file: 'down_weights.bin' })
  if (cfg.mlpBias)
    refs.push({ key: `${p}.mlp.down_proj.bias`, transpose: false, file: 'down_weights.bin' })
  const norm = (name: string): WeightRef => ({
    key: `${p}.${name}.weight`,
    transpose: false,
    file: 'norms.bin',
  })
  refs.push(norm('input_layernorm'), norm('post_attention_layernorm'))
  if (cfg.sandwichNorms)
    refs.push(norm('pre_feedforward_layernorm'), norm('post_feedforward_layernorm'))
  return refs
}

function gpt2LayerRefs(i: number): WeightRef[] {
  const p = `h.${i}`
  return [
    { key: `${p}.attn.c_attn.weight`, transpose: true, file: 'attn_weights.bin' },
    { key: `${p}.attn.c_attn.bias`, transpose: false, file: 'attn_weights.bin' },
    { key: `${p}.attn.c_proj.weight`, transpose: true, file: 'attn_weights.bin' },
    { key: `${p}.attn.c_proj.bias`, transpose: false, file: 'attn_weights.bin' },
    // c_fc.weight is the gate (gate_vectors.bin); its bias is an input-side MLP bias.
    { key: `${p}.mlp.c_fc.bias`, transpose: false, file: 'up_weights.bin' },
    { key: `${p}.mlp.c_proj.weight`, transpose: true, file: 'down_weights.bin' },
    { key: `${p}.mlp.c_proj.bias`, transpose: false, file: 'down_weights.bin' },
    { key: `${p}.ln_1.weight`, transpose: false, file: 'norms.bin' },
    { key: `${p}.ln_1.bias`, transpose: false, file: 'norms.bin' },
    { key: `${p}.ln_2.weight`, transpose: false, file: 'norms.bin' },
    { key: `${p}.ln_2.bias`, transpose: false, file: 'norms.bin' },
  ]
}

/** Model-level tensors (final norm, learned positions, untied lm_head). */
export function globalWeightRefs(cfg: ModelConfig): WeightRef[] {
  const refs: WeightRef[] =
    cfg.family === 'gpt2'
      ? [
          { key: 'ln_f.weight', transpose: false, file: 'norms.bin' },
          { key: 'ln_f.bias', transpose: false, file: 'norms.bin' },
          { key: 'wpe.weight', transpose: false, file: 'position_embeddings.bin' },
        ]
      : [{ key: 'norm.weight', transpose: false, file: 'norms.bin' }]
  if (!cfg.tieWordEmbeddings)
    refs.push({ key: 'lm_head.weight', transpose: false, file: 'lm_head.bin' })
  return refs
}
