// An independent, deliberately simple float64 reference implementation of
// pg_infer's knowledge-query semantics (walk, describe, similar_to,
// infer_distance, implies, down_meta, gate KNN). It reads the HuggingFace
// checkpoint directly (config.json, model.safetensors, tokenizer.json) and
// shares no code with the extension or the vindex packages: it is the oracle
// the C/WASM implementation is compared against, row for row.
//
// Everything is computed in float64; the f32/f16/bf16 weights widen exactly.

import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { Checkpoint } from './safetensors.js'

/**
 * English stopwords that describe() never reports as targets: the classic
 * 127-word list (NLTK's original English list, which is also the list most
 * tools call "the common English stopwords"). Lower case.
 */
export const STOPWORDS: ReadonlySet<string> = new Set([
  'i', 'me', 'my', 'myself', 'we', 'our', 'ours', 'ourselves', 'you', 'your',
  'yours', 'yourself', 'yourselves', 'he', 'him', 'his', 'himself', 'she', 'her',
  'hers', 'herself', 'it', 'its', 'itself', 'they', 'them', 'their', 'theirs',
  'themselves', 'what', 'which', 'who', 'whom', 'this', 'that', 'these', 'those',
  'am', 'is', 'are', 'was', 'were', 'be', 'been', 'being', 'have', 'has', 'had',
  'having', 'do', 'does', 'did', 'doing', 'a', 'an', 'the', 'and', 'but', 'if',
  'or', 'because', 'as', 'until', 'while', 'of', 'at', 'by', 'for', 'with',
  'about', 'against', 'between', 'into', 'through', 'during', 'before', 'after',
  'above', 'below', 'to', 'from', 'up', 'down', 'in', 'out', 'on', 'off', 'over',
  'under', 'again', 'further', 'then', 'once', 'here', 'there', 'when', 'where',
  'why', 'how', 'all', 'any', 'both', 'each', 'few', 'more', 'most', 'other',
  'some', 'such', 'no', 'nor', 'not', 'only', 'own', 'same', 'so', 'than', 'too',
  'very', 's', 't', 'can', 'will', 'just', 'don', 'should', 'now',
]) // prettier-ignore

export type Band = 'syntax' | 'knowledge' | 'output'

/**
 * Curated layer bands (last syntax layer, last knowledge layer) per
 * (model_type, num_layers), as LARQL declares them
 * (chrishayuk/larql, crates/larql-vindex/src/config: LayerBands::for_family).
 */
const CURATED_BANDS: Record<string, [number, number]> = {
  'gemma3/34': [13, 27], 'gemma3/42': [16, 34],
  'gemma2/26': [10, 20], 'gemma2/42': [16, 34], 'gemma2/46': [18, 37],
  'gemma4/30': [11, 23], 'gemma4/35': [13, 27], 'gemma4/36': [14, 28], 'gemma4/60': [23, 47],
  'llama/32': [12, 25], 'llama/40': [15, 32], 'llama/80': [31, 63],
  'mistral/32': [12, 25], 'mixtral/32': [12, 25],
  'qwen2/28': [10, 22], 'qwen2/32': [12, 25], 'qwen2/40': [15, 32], 'qwen2/64': [25, 51], 'qwen2/80': [31, 63],
  'phi/32': [12, 25], 'phi/40': [15, 32],
  'gpt2/12': [4, 9], 'gpt2/24': [9, 19], 'gpt2/36': [14, 28], 'gpt2/48': [19, 38],
} // prettier-ignore

/**
 * The layer band ('syntax' | 'knowledge' | 'output') of `layer` in a model
 * with `numLayers` layers. The rule is LARQL's (LayerBands::for_family in
 * chrishayuk/larql, stored as "layer_bands" in a vindex's index.json): a
 * curated split for some exact (model_type, depth) pairs, otherwise the
 * proportional estimate syntax = layers [0, floor(2n/5)), knowledge =
 * [floor(2n/5), floor(4n/5)), output = the rest (~40% / ~40% / ~20%).
 * One deviation: LARQL bands nothing below 8 layers (every layer then falls
 * in the first band, 'syntax'); here the proportional estimate applies at
 * every depth, so the 6-layer fixture gets syntax 0-1, knowledge 2-3,
 * output 4-5.
 */
export function layerBand(layer: number, numLayers: number, modelType = ''): Band {
  if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
    throw new Error(`layer ${layer} out of range 0..${numLayers - 1}`)
  }
  const curated = CURATED_BANDS[`${modelType}/${numLayers}`]
  const syntaxLast = curated ? curated[0] : Math.floor((numLayers * 2) / 5) - 1
  const knowledgeLast = curated ? curated[1] : Math.floor((numLayers * 4) / 5) - 1
  if (layer <= syntaxLast) return 'syntax'
  if (layer <= knowledgeLast) return 'knowledge'
  return 'output'
}

/** A content word: letters only (any script), after trimming. */
export function isLettersOnly(s: string): boolean {
  return /^\p{L}+$/u.test(s)
}

export interface TokenLogit {
  token: number
  logit: number
}

export interface FeatureScore {
  layer: number
  feature: number
  score: number
}

export interface WalkRow {
  layer: number
  feature: number
  activation: number
  concept: string
}

/** A describe() gate candidate before filtering; `target` is the feature's raw concept. */
export interface DescribeCandidate {
  layer: number
  feature: number
  score: number
  target: string
}

export interface DescribeEdge {
  target: string
  relation: Band
  layer: number
  confidence: number
  feature: number
}

export type WalkMode = 'last' | 'average'

/** Sequential dot product of a[ao .. ao+n) and b[bo .. bo+n). */
function dot(a: Float64Array, ao: number, b: Float64Array, bo: number, n: number): number {
  let s = 0
  for (let i = 0; i < n; i++) s += a[ao + i]! * b[bo + i]!
  return s
}

/** |x| descending, then the given index keys ascending. */
function byAbsDesc(a: FeatureScore, b: FeatureScore): number {
  return Math.abs(b.score) - Math.abs(a.score) || a.layer - b.layer || a.feature - b.feature
}

/** Top-k of a logit vector: logit descending, ties by token id ascending. */
export function topKLogits(logits: Float64Array, k: number): TokenLogit[] {
  const best: TokenLogit[] = [] // kept sorted, best first
  for (let t = 0; t < logits.length; t++) {
    const v = logits[t]!
    if (best.length === k && !(v > best[k - 1]!.logit)) continue // a tie keeps the smaller id already there
    let i = best.length
    while (i > 0 && v > best[i - 1]!.logit) i--
    best.splice(i, 0, { token: t, logit: v })
    if (best.length > k) best.pop()
  }
  return best
}

interface ModelConfig {
  model_type?: string
  hidden_size: number
  intermediate_size: number
  num_hidden_layers: number
  vocab_size: number
  text_config?: ModelConfig
}

export class ReferenceModel {
  readonly dir: string
  readonly modelType: string
  readonly numLayers: number
  readonly hidden: number
  readonly features: number
  readonly vocab: number
  readonly embedScale: number
  readonly tokenizer: Tokenizer
  /** embed_tokens [vocab x hidden], unscaled. */
  readonly embed: Float64Array
  /** gate_proj per layer, [features x hidden]. */
  readonly gate: Float64Array[]

  private readonly checkpoint: Checkpoint
  private readonly prefix: string
  /** down_proj transposed per layer, [features x hidden] (so a feature's column is contiguous); lazy. */
  private readonly downT: (Float64Array | undefined)[]
  private readonly downMetaCache = new Map<number, TokenLogit[]>()
  private readonly decodeCache = new Map<number, string>()

  private constructor(dir: string) {
    this.dir = dir
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as ModelConfig
    const cfg = raw.text_config ?? raw
    this.modelType = cfg.model_type ?? raw.model_type ?? ''
    this.numLayers = cfg.num_hidden_layers
    this.hidden = cfg.hidden_size
    this.features = cfg.intermediate_size
    // Gemma scales embeddings by sqrt(hidden); everything else by 1.
    this.embedScale = this.modelType.startsWith('gemma') ? Math.sqrt(this.hidden) : 1

    const tokJson = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as object
    const cfgPath = join(dir, 'tokenizer_config.json')
    const tokCfg = existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as object) : {}
    this.tokenizer = new Tokenizer(tokJson, tokCfg)

    this.checkpoint = new Checkpoint(dir)
    const prefixes = ['model.', 'model.language_model.', 'language_model.model.', '']
    const prefix = prefixes.find((p) => this.checkpoint.has(`${p}embed_tokens.weight`))
    if (prefix === undefined) throw new Error(`${dir}: no embed_tokens.weight`)
    this.prefix = prefix
    const e = this.checkpoint.get(`${prefix}embed_tokens.weight`)
    if (e.shape.length !== 2 || e.shape[1] !== this.hidden)
      throw new Error(`embed_tokens shape ${e.shape}`)
    this.vocab = e.shape[0]!
    this.embed = e.data
    this.gate = []
    for (let l = 0; l < this.numLayers; l++) {
      const g = this.checkpoint.get(`${prefix}layers.${l}.mlp.gate_proj.weight`)
      if (g.shape[0] !== this.features || g.shape[1] !== this.hidden)
        throw new Error(`gate_proj ${l} shape ${g.shape}`)
      this.gate.push(g.data)
    }
    this.downT = new Array<Float64Array | undefined>(this.numLayers).fill(undefined)
  }

  /** Load a HuggingFace checkpoint directory (config.json, model.safetensors, tokenizer.json). */
  static load(dir: string): ReferenceModel {
    return new ReferenceModel(dir)
  }

  // ---- tokens ---------------------------------------------------------------

  /** Token ids of `text`; throws on empty text or text with no tokens. */
  tokenize(text: string, addSpecialTokens: boolean): number[] {
    if (text.length === 0) throw new Error('empty text')
    const ids = this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids
    if (ids.length === 0) throw new Error(`text ${JSON.stringify(text)} has no tokens`)
    return ids
  }

  /** The decoded text of a single token id, trimmed. */
  decodeToken(id: number): string {
    const cached = this.decodeCache.get(id)
    if (cached !== undefined) return cached
    const s: string = this.tokenizer.decode([id]).trim()
    this.decodeCache.set(id, s)
    return s
  }

  /** The query vector: the last token's embedding x embed_scale. */
  queryLast(ids: number[]): Float64Array {
    const q = new Float64Array(this.hidden)
    const o = ids[ids.length - 1]! * this.hidden
    for (let h = 0; h < this.hidden; h++) q[h] = this.embed[o + h]! * this.embedScale
    return q
  }

  /** The query vector: the mean of the tokens' embeddings x embed_scale. */
  queryMean(ids: number[]): Float64Array {
    const q = new Float64Array(this.hidden)
    for (const id of ids) {
      const o = id * this.hidden
      for (let h = 0; h < this.hidden; h++) q[h]! += this.embed[o + h]!
    }
    for (let h = 0; h < this.hidden; h++) q[h] = (q[h]! / ids.length) * this.embedScale
    return q
  }

  // ---- gate KNN -------------------------------------------------------------

  /** G_l . q: one score per feature of `layer`. */
  gateScores(layer: number, q: Float64Array): Float64Array {
    this.checkLayer(layer)
    const g = this.gate[layer]!
    const out = new Float64Array(this.features)
    for (let f = 0; f < this.features; f++) out[f] = dot(g, f * this.hidden, q, 0, this.hidden)
    return out
  }

  /** Gate KNN: the top-k features of `layer` by |score|, ties by feature ascending. */
  gateKnn(layer: number, q: Float64Array, k: number): FeatureScore[] {
    const s = this.gateScores(layer, q)
    const all: FeatureScore[] = []
    for (let f = 0; f < this.features; f++) all.push({ layer, feature: f, score: s[f]! })
    return all.sort(byAbsDesc).slice(0, k)
  }

  /** Every (layer, feature) gate score for q. */
  allScores(q: Float64Array): FeatureScore[] {
    const all: FeatureScore[] = []
    for (let l = 0; l < this.numLayers; l++) {
      const s = this.gateScores(l, q)
      for (let f = 0; f < this.features; f++) all.push({ layer: l, feature: f, score: s[f]! })
    }
    return all
  }

  // ---- down_meta ------------------------------------------------------------

  private downTransposed(layer: number): Float64Array {
    let t = this.downT[layer]
    if (!t) {
      const d = this.checkpoint.get(`${this.prefix}layers.${layer}.mlp.down_proj.weight`)
      if (d.shape[0] !== this.hidden || d.shape[1] !== this.features)
        throw new Error(`down_proj ${layer} shape ${d.shape}`)
      const H = this.hidden
      const F = this.features
      t = new Float64Array(F * H)
      for (let h = 0; h < H; h++) for (let f = 0; f < F; f++) t[f * H + h] = d.data[h * F + f]!
      this.downT[layer] = t
    }
    return t
  }

  /** E @ W_down_l[:, f]: the vocab-length logit vector of one feature. */
  downLogits(layer: number, feature: number): Float64Array {
    this.checkFeature(layer, feature)
    const t = this.downTransposed(layer)
    const H = this.hidden
    const out = new Float64Array(this.vocab)
    for (let v = 0; v < this.vocab; v++) out[v] = dot(this.embed, v * H, t, feature * H, H)
    return out
  }

  /** down_meta: the top-k tokens of E @ W_down_l[:, f], logit descending, ties by id ascending. */
  downMeta(layer: number, feature: number, k = 10): TokenLogit[] {
    const key = layer * this.features + feature
    const cached = this.downMetaCache.get(key)
    if (cached && cached.length >= Math.min(k, this.vocab)) return cached.slice(0, k)
    const top = topKLogits(this.downLogits(layer, feature), Math.max(k, 10))
    this.downMetaCache.set(key, top)
    return top.slice(0, k)
  }

  /**
   * down_meta for every feature of a layer at once (same arithmetic as
   * downMeta, blocked over the vocabulary so the embedding rows stay in cache).
   */
  downMetaLayer(layer: number, k = 10): TokenLogit[][] {
    this.checkLayer(layer)
    const t = this.downTransposed(layer)
    const H = this.hidden
    const F = this.features
    const V = this.vocab
    const E = this.embed
    const logits = new Float64Array(F * V) // [feature x vocab]
    // Each logit is exactly dot(E[v, :], W_down[:, f]) summed in h order, as in
    // downLogits; the loop only computes a 2 x 2 tile of them at a time.
    const BLOCK = 64
    for (let v0 = 0; v0 < V; v0 += BLOCK) {
      const v1 = Math.min(V, v0 + BLOCK)
      let f = 0
      for (; f + 1 < F; f += 2) {
        const f0 = f * H
        const f1 = f0 + H
        let v = v0
        for (; v + 1 < v1; v += 2) {
          const e0 = v * H
          const e1 = e0 + H
          let s00 = 0
          let s01 = 0
          let s10 = 0
          let s11 = 0
          for (let h = 0; h < H; h++) {
            const a = E[e0 + h]!
            const b = E[e1 + h]!
            const x = t[f0 + h]!
            const y = t[f1 + h]!
            s00 += a * x
            s01 += b * x
            s10 += a * y
            s11 += b * y
          }
          logits[f * V + v] = s00
          logits[f * V + v + 1] = s01
          logits[(f + 1) * V + v] = s10
          logits[(f + 1) * V + v + 1] = s11
        }
        for (; v < v1; v++) {
          logits[f * V + v] = dot(E, v * H, t, f0, H)
          logits[(f + 1) * V + v] = dot(E, v * H, t, f1, H)
        }
      }
      for (; f < F; f++)
        for (let v = v0; v < v1; v++) logits[f * V + v] = dot(E, v * H, t, f * H, H)
    }
    const out: TokenLogit[][] = []
    for (let f = 0; f < F; f++) {
      const top = topKLogits(logits.subarray(f * V, (f + 1) * V), Math.max(k, 10))
      const key = layer * F + f
      const cached = this.downMetaCache.get(key)
      if (!cached || cached.length < top.length) this.downMetaCache.set(key, top)
      out.push(top.slice(0, k))
    }
    return out
  }

  /** A feature's concept / target token: its top down_meta token, decoded and trimmed. */
  concept(layer: number, feature: number): string {
    return this.decodeToken(this.downMeta(layer, feature, 1)[0]!.token)
  }

  // ---- queries --------------------------------------------------------------

  /**
   * walk(prompt, top, mode): the `top` strongest (layer, feature) gate
   * activations of the prompt's query vector over all layers, rows ordered by
   * layer, then |activation| descending, then feature.
   */
  walk(prompt: string, top = 10, mode: WalkMode = 'last'): WalkRow[] {
    const ids = this.tokenize(prompt, true)
    const q = mode === 'last' ? this.queryLast(ids) : this.queryMean(ids)
    const picked = this.allScores(q).sort(byAbsDesc).slice(0, Math.max(0, top))
    picked.sort(
      (a, b) => a.layer - b.layer || Math.abs(b.score) - Math.abs(a.score) || a.feature - b.feature,
    )
    return picked.map((p) => ({
      layer: p.layer,
      feature: p.feature,
      activation: p.score,
      concept: this.concept(p.layer, p.feature),
    }))
  }

  /** The entity's query vector: mean token embedding (no special tokens) x embed_scale. */
  entityQuery(text: string): Float64Array {
    return this.queryMean(this.tokenize(text, false))
  }

  /**
   * describe()'s gate candidates before any filtering: per layer the top
   * `topK` features by |score|; ordered by score descending (signed), ties by
   * layer then feature. `target` is the raw concept (decoded, trimmed).
   */
  describeCandidates(entity: string, topK = 20): DescribeCandidate[] {
    const q = this.entityQuery(entity)
    const cands: DescribeCandidate[] = []
    for (let l = 0; l < this.numLayers; l++) {
      for (const c of this.gateKnn(l, q, topK))
        cands.push({ ...c, target: this.concept(c.layer, c.feature) })
    }
    return cands.sort((a, b) => b.score - a.score || a.layer - b.layer || a.feature - b.feature)
  }

  /** The threshold describe() applies: `threshold`, or when it is 0, 10% of the largest candidate score. */
  describeThreshold(candidates: DescribeCandidate[], threshold: number): number {
    if (threshold !== 0) return threshold
    let max = -Infinity
    for (const c of candidates) max = Math.max(max, c.score)
    return 0.1 * max
  }

  /**
   * describe(entity, threshold, top_k): knowledge edges of an entity.
   * Ordered by confidence descending, then layer, then target, then feature.
   */
  describe(entity: string, threshold = 0, topK = 20): DescribeEdge[] {
    const cands = this.describeCandidates(entity, topK)
    const thr = this.describeThreshold(cands, threshold)
    const self = entity.trim().toLowerCase()
    const best = new Map<string, DescribeEdge>()
    for (const c of cands) {
      if (!(c.score >= thr)) continue
      const target = c.target
      const key = target.toLowerCase()
      if (!isLettersOnly(target) || key === self || STOPWORDS.has(key)) continue
      const edge: DescribeEdge = {
        target,
        relation: layerBand(c.layer, this.numLayers, this.modelType),
        layer: c.layer,
        confidence: c.score,
        feature: c.feature,
      }
      const prev = best.get(key)
      if (!prev || compareEdges(edge, prev) < 0) best.set(key, edge)
    }
    return [...best.values()].sort(compareEdges)
  }

  /** A text's top-50 positive-score features over all layers (score desc, ties layer, feature). */
  similarityFeatures(text: string, n = 50): FeatureScore[] {
    const all = this.allScores(this.entityQuery(text)).filter((s) => s.score > 0)
    all.sort((a, b) => b.score - a.score || a.layer - b.layer || a.feature - b.feature)
    return all.slice(0, n)
  }

  /** The largest min(score_a, score_b) over (layer, feature) pairs both top-50 sets share; 0 when none. */
  similarTo(a: string, b: string): number {
    const fa = this.similarityFeatures(a)
    const fb = new Map(
      this.similarityFeatures(b).map((s) => [s.layer * this.features + s.feature, s.score]),
    )
    let best = 0
    for (const s of fa) {
      const other = fb.get(s.layer * this.features + s.feature)
      if (other !== undefined) best = Math.max(best, Math.min(s.score, other))
    }
    return best
  }

  /** infer_distance(a, b) = 1 / (1 + similar_to(a, b)). */
  inferDistance(a: string, b: string): number {
    return 1 / (1 + this.similarTo(a, b))
  }

  // ---- signature definition version 2 (similar.c) ---------------------------

  /**
   * Whether the tokenizer marks word starts with a space: at least 5 of its
   * first 2000 tokens decode alone to a space and then an ASCII letter or digit.
   */
  private wordStarts?: boolean
  marksWordStarts(): boolean {
    if (this.wordStarts === undefined) {
      let marked = 0
      for (let i = 0; i < Math.min(this.vocab, 2000); i++)
        if (/^ [A-Za-z0-9]/.test(this.tokenizer.decode([i]))) marked++
      this.wordStarts = marked >= 5
    }
    return this.wordStarts
  }

  /**
   * The entity form of a text as it occurs mid-sentence, with the leading
   * space when the tokenizer marks word starts: a text with both ASCII cases
   * as written; one all in lower or all in upper case re-cased word by word
   * (words split at spaces) to whichever of lower case, title case (upper at
   * a word start: after anything but an ASCII letter, a digit or a non-ASCII
   * character) and as written has the fewest tokens mid-sentence (ties: as
   * written, lower, title).
   */
  entityForm(text: string): string {
    if (text.length === 0) throw new Error('empty text')
    const prefix = this.marksWordStarts() ? ' ' : ''
    const count = (t: string) => {
      const n = this.tokenizer.encode(prefix + t, { add_special_tokens: false }).ids.length
      return n === 0 ? Infinity : n
    }
    const title = (w: string) => {
      let start = true
      let out = ''
      for (const ch of w) {
        const letter = /[A-Za-z]/.test(ch)
        out += letter ? (start ? ch.toUpperCase() : ch.toLowerCase()) : ch
        start = !(letter || /[0-9]/.test(ch) || ch.codePointAt(0)! >= 0x80)
      }
      return out
    }
    if (/[a-z]/.test(text) !== /[A-Z]/.test(text)) {
      const words = text.split(' ').map((w) => {
        if (!w) return w
        let best = w
        let n = count(w)
        for (const alt of [w.replace(/[A-Z]/g, (c) => c.toLowerCase()), title(w)]) {
          if (alt === best) continue
          const na = count(alt)
          if (na < n) {
            best = alt
            n = na
          }
        }
        return best
      })
      text = words.join(' ')
    }
    return prefix + text
  }

  /** A text's signature: the distinct tokens of its entity form, in order of first occurrence (at most 256). */
  signatureTokens(text: string): number[] {
    const ids = this.tokenize(this.entityForm(text), false)
    return [...new Set(ids)].slice(0, 256)
  }

  /** A browse-level model's token vector: input embedding minus the vocabulary mean, unit length. */
  private meanEmbedding?: Float64Array
  tokenVector(id: number): Float64Array {
    if (!this.meanEmbedding) {
      const m = new Float64Array(this.hidden)
      for (let v = 0; v < this.vocab; v++)
        for (let h = 0; h < this.hidden; h++) m[h]! += this.embed[v * this.hidden + h]!
      for (let h = 0; h < this.hidden; h++) m[h]! /= this.vocab
      this.meanEmbedding = m
    }
    const v = new Float64Array(this.hidden)
    let norm = 0
    for (let h = 0; h < this.hidden; h++) {
      v[h] = this.embed[id * this.hidden + h]! - this.meanEmbedding[h]!
      norm += v[h]! * v[h]!
    }
    for (let h = 0; h < this.hidden; h++) v[h]! /= Math.sqrt(norm)
    return v
  }

  /**
   * similar_to of signature definition version 2 for a browse-level model:
   * for every token of a the best cosine with a token of b, averaged, and
   * the same from b to a; the two means averaged.
   */
  similarToTokens(a: string, b: string): number {
    const va = this.signatureTokens(a).map((t) => this.tokenVector(t))
    const vb = this.signatureTokens(b).map((t) => this.tokenVector(t))
    const bestB = vb.map(() => -Infinity)
    let sumA = 0
    for (const x of va) {
      let best = -Infinity
      vb.forEach((y, j) => {
        let d = 0
        for (let h = 0; h < this.hidden; h++) d += x[h]! * y[h]!
        best = Math.max(best, d)
        bestB[j] = Math.max(bestB[j]!, d)
      })
      sumA += best
    }
    return (sumA / va.length + bestB.reduce((s, x) => s + x, 0) / vb.length) / 2
  }

  /** Whether describe(subject)'s targets include the object (trimmed, lower-cased). */
  implies(subject: string, object: string): boolean {
    const o = object.trim().toLowerCase()
    if (o.length === 0) throw new Error('empty object')
    return this.describe(subject).some((e) => e.target.trim().toLowerCase() === o)
  }

  // ---- checks ---------------------------------------------------------------

  private checkLayer(layer: number): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new Error(`layer ${layer} out of range 0..${this.numLayers - 1}`)
    }
  }

  private checkFeature(layer: number, feature: number): void {
    this.checkLayer(layer)
    if (!Number.isInteger(feature) || feature < 0 || feature >= this.features) {
      throw new Error(`feature ${feature} out of range 0..${this.features - 1}`)
    }
  }
}

/** describe() order: confidence descending, then layer, then target, then feature. */
function compareEdges(a: DescribeEdge, b: DescribeEdge): number {
  return (
    b.confidence - a.confidence ||
    a.layer - b.layer ||
    (a.target < b.target ? -1 : a.target > b.target ? 1 : 0) ||
    a.feature - b.feature
  )
}
