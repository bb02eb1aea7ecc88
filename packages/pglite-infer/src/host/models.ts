import {
  DownMeta,
  FILES,
  VindexError,
  layerBandsFor,
  levelAtLeast,
  modelConfigFromIndex,
  type ExtractLevel,
  loadTokenizer,
  openVindexSync,
  verifyChecksumSync,
  checkWeightFileSize,
  weightFileEnds,
  type Tokenizer,
  type VindexIndex,
} from '@pglite-infer/vindex'
import {
  DatabaseFiles,
  HostFiles,
  loadNodeFs,
  resolveInDataDirectory,
  type EmscriptenFS,
  type SyncFiles,
} from './sources.js'
import { fetchRemoteSync } from './remote.js'
import { HostError, type HostOptions } from './types.js'

/** Keep in step with extension/src/model.h (ModelMetaWord). */
const MODEL_META_VERSION = 1
/** model.h's level codes; 'attention' counts as browse for what C loads. */
const C_LEVELS: readonly ExtractLevel[] = ['browse', 'inference', 'all']
const BAND_CODES = { syntax: 0, knowledge: 1, output: 2 } as const

/** A vindex opened for loading: what C copies into the WASM heap. */
interface OpenedVindex {
  /** Check each file read against index.json's checksums. */
  verify: boolean
  index: VindexIndex
  gate: Uint8Array
  embed: Uint8Array
  downMeta: DownMeta
  /** Where the inference weight files are read from, on first request. */
  files: SyncFiles
  weightFiles: Map<string, Uint8Array>
}

/**
 * The models the host knows, by name: the vindex data until C has copied it
 * into its own memory (then released), and the tokenizer for as long as the
 * model is loaded.
 */
export class ModelHost {
  private readonly opened = new Map<string, OpenedVindex>()
  private readonly tokenizers = new Map<string, Tokenizer>()
  private readonly decoded = new Map<string, Map<number, Uint8Array>>()

  private readonly allowedHostDirectories: readonly string[]

  constructor(
    private readonly fs: () => EmscriptenFS | undefined,
    options: HostOptions = {},
  ) {
    this.allowedHostDirectories = options.allowedHostDirectories ?? []
  }

  /** Opens `source` as model `name`; returns its description (model.h layout). */
  open(name: string, source: string, level: string, dataDirectory: string): Uint8Array {
    const files = this.resolve(source, level, dataDirectory)
    const vindex = withVindexErrors(name, files.where, () => openSync(files, this.verifyChecksums))
    const have = vindex.index.extract_level
    if (!levelAtLeast(have, level as ExtractLevel))
      throw new HostError(
        `model "${name}": the vindex at ${files.where} has extract level ${vindex.index.extract_level}, ` +
          `but ${level} was asked for; extract it again with --level ${level}`,
        '22023',
      )
    const tokenizer = withVindexErrors(name, files.where, () =>
      loadTokenizer(
        checked(vindex, FILES.tokenizer, required(files, FILES.tokenizer)),
        optional(vindex, FILES.tokenizerConfig),
      ),
    )
    if (this.verifyChecksums) withVindexErrors(name, files.where, () => verifyListedFiles(vindex))
    this.opened.set(name, vindex)
    this.tokenizers.set(name, tokenizer)
    this.decoded.set(name, new Map())
    return encodeMeta(vindex.index, C_LEVELS.indexOf(have))
  }

  /** Bytes of one part of an opened model, exactly `nbytes` long. */
  read(name: string, part: string, layer: number, nbytes: number): Uint8Array {
    const v = this.opened.get(name)
    if (!v) throw new HostError(`model "${name}" is not open on the host`, '55000')
    let bytes: Uint8Array
    if (part === 'gate') {
      const l = v.index.layers[layer]
      if (!l) throw new HostError(`model "${name}" has no layer ${layer}`, '22023')
      bytes = v.gate.subarray(l.offset, l.offset + l.length)
    } else if (part === 'embed') {
      bytes = v.embed
    } else if (part === 'down_tokens') {
      bytes = downTokens(v, layer)
    } else if (part === 'down_logits') {
      bytes = downLogits(v, layer)
    } else if (part === 'config') {
      bytes = withVindexErrors(name, v.files.where, () => encodeForwardConfig(v.index))
    } else if (part.startsWith('weight:')) {
      bytes = weightBytes(name, v, part.slice('weight:'.length))
    } else throw new HostError(`unknown model part "${part}"`, '22023')
    if (bytes.length !== nbytes)
      throw new HostError(
        `model "${name}": ${part} of layer ${layer} has ${bytes.length} bytes, C expected ${nbytes}`,
        'XX001',
      )
    return bytes
  }

  /**
   * A whole file of an opened model (tokenizer.json, ...), for a model index
   * to store in its pages; empty when an optional file is absent.
   */
  file(name: string, file: string): Uint8Array {
    const v = this.opened.get(name)
    if (!v) throw new HostError(`model "${name}" is not open on the host`, '55000')
    if (!/^[A-Za-z0-9_.-]+$/.test(file)) throw new HostError(`invalid file name "${file}"`, '22023')
    return withVindexErrors(name, v.files.where, () => optional(v, file)) ?? new Uint8Array(0)
  }

  /** A model whose data C loaded itself (from index pages): only its tokenizer. */
  adopt(name: string, tokenizerJson: Uint8Array, tokenizerConfig: Uint8Array): void {
    const tokenizer = withVindexErrors(name, 'index', () =>
      loadTokenizer(tokenizerJson, tokenizerConfig.length ? tokenizerConfig : undefined),
    )
    this.tokenizers.set(name, tokenizer)
    this.decoded.set(name, new Map())
  }

  release(name: string, forgetTokenizer: boolean): void {
    this.opened.delete(name)
    if (forgetTokenizer) {
      this.tokenizers.delete(name)
      this.decoded.delete(name)
    }
  }

  /**
   * Keeps only what the models C holds need: a source opened for a load that
   * failed or was rolled back (every byte of its vindex) and the tokenizers
   * of models C no longer holds are dropped.
   */
  sync(kept: ReadonlySet<string>): void {
    this.opened.clear()
    for (const name of [...this.tokenizers.keys()])
      if (!kept.has(name)) {
        this.tokenizers.delete(name)
        this.decoded.delete(name)
      }
  }

  /** Token ids; text made only of the tokenizer's unknown token is an error. */
  tokenize(name: string, text: string, addSpecialTokens: boolean): number[] {
    const tokenizer = this.tokenizer(name)
    const ids = tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids
    const unk = unknownTokenId(tokenizer)
    if (unk !== undefined && ids.length > 0 && ids.every((id: number) => id === unk))
      throw new HostError(
        `the text has only unknown tokens under model "${name}"'s tokenizer`,
        '22023',
      )
    return ids
  }

  /**
   * Each id decoded alone and trimmed, as records C reads: a flag byte
   * (bit 0: letters only), the text, NUL, its lower-case form, NUL.
   */
  decode(name: string, ids: ArrayLike<number>): Uint8Array {
    const tokenizer = this.tokenizer(name)
    const cache = this.decoded.get(name)!
    const parts: Uint8Array[] = []
    let total = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!
      let rec = cache.get(id)
      if (!rec) {
        rec = decodedRecord(tokenizer.decode([id]))
        cache.set(id, rec)
      }
      parts.push(rec)
      total += rec.length
    }
    const out = new Uint8Array(total)
    let o = 0
    for (const p of parts) {
      out.set(p, o)
      o += p.length
    }
    return out
  }

  private tokenizer(name: string): Tokenizer {
    const t = this.tokenizers.get(name)
    if (!t) throw new HostError(`model "${name}" is not loaded on the host`, '55000')
    return t
  }

  /**
   * Where a source's files are. Absolute paths are on the host (Node) or,
   * without one, in the database's file system; relative paths are inside
   * infer.data_directory in the database's file system (so they persist with
   * the database).
   */
  private resolve(source: string, level: string, dataDirectory: string): SyncFiles {
    if (/^(https?|hf):\/\//.test(source))
      return fetchRemoteSync(source, {
        autoDownload: this.autoDownload,
        level: level as ExtractLevel,
      })
    if (source.startsWith('/')) {
      const fs = loadNodeFs()
      if (!fs || this.allowedHostDirectories.length === 0)
        throw new HostError(
          `model source "${source}" is an absolute path, and this application allows no host ` +
            'directory',
          '42501',
        )
      return new HostFiles(fs, source.replace(/\/+$/, ''), this.allowedHostDirectories)
    }
    return new DatabaseFiles(this.databaseFs(), resolveInDataDirectory(source, dataDirectory))
  }

  /** Set per call from the infer.auto_download GUC. */
  autoDownload = true
  /** Set per call from the infer.verify_checksums GUC. */
  verifyChecksums = true

  private databaseFs(): EmscriptenFS {
    const fs = this.fs()
    if (!fs) throw new HostError("the database's file system is not available", '58000')
    return fs
  }
}

const encoder = new TextEncoder()

/** The id of the tokenizer model's unk_token, when it has one. */
function unknownTokenId(tokenizer: Tokenizer): number | undefined {
  const unk = (tokenizer.model as { unk_token?: unknown } | null)?.unk_token
  return typeof unk === 'string' ? tokenizer.token_to_id(unk) : undefined
}

/** flag, trimmed text, NUL, lower-case, NUL, raw (untrimmed) text, NUL */
function decodedRecord(raw: string): Uint8Array {
  const text = raw.trim()
  const letters = /^\p{L}+$/u.test(text) ? 1 : 0
  const a = encoder.encode(text.replaceAll('\0', ''))
  const b = encoder.encode(text.toLowerCase().replaceAll('\0', ''))
  const c = encoder.encode(raw.replaceAll('\0', ''))
  const rec = new Uint8Array(1 + a.length + 1 + b.length + 1 + c.length + 1)
  rec[0] = letters
  rec.set(a, 1)
  rec.set(b, 2 + a.length)
  rec.set(c, 3 + a.length + b.length)
  return rec
}

function required(files: SyncFiles, name: string): Uint8Array {
  const b = files.read(name)
  if (!b)
    throw new VindexError('MISSING_FILE', 'file not found', {
      file: name,
      hint: 'is this a vindex directory? extract one with `pglite-infer extract`',
    })
  return b
}

/** The browse-level files of a vindex, validated as the vindex package does. */
function openSync(files: SyncFiles, verify: boolean): OpenedVindex {
  return {
    ...openVindexSync((name) => files.read(name), { verifyChecksums: verify }),
    files,
    verify,
    weightFiles: new Map(),
  }
}

/**
 * The files index.json's checksums list that loading would not read now
 * (weight_manifest.json, generation_config.json, ...): checked at open, so
 * a vindex is whole or refused. Weight files are checked when first read.
 */
function verifyListedFiles(v: OpenedVindex): void {
  const readAlready = new Set<string>([
    FILES.index,
    FILES.gateVectors,
    FILES.embeddings,
    FILES.downMeta,
    FILES.tokenizer,
    FILES.tokenizerConfig,
    ...(v.index.weights ?? []).map((w) => w.file),
  ])
  for (const name of Object.keys(v.index.checksums ?? {}))
    if (!readAlready.has(name)) {
      const bytes = v.files.read(name)
      if (!bytes)
        throw new VindexError('MISSING_FILE', 'file listed in checksums is missing', { file: name })
      checked(v, name, bytes)
    }
}

/** A file's bytes once they match index.json's checksum (when checking is on). */
function checked(v: OpenedVindex, name: string, bytes: Uint8Array): Uint8Array {
  if (v.verify) verifyChecksumSync(v.index, name, bytes)
  return bytes
}

function optional(v: OpenedVindex, name: string): Uint8Array | undefined {
  const bytes = v.files.read(name)
  if (!bytes) {
    if (v.verify && v.index.checksums?.[name] !== undefined)
      throw new VindexError('MISSING_FILE', 'file listed in checksums is missing', { file: name })
    return undefined
  }
  return checked(v, name, bytes)
}

/** One tensor of the weight manifest (inference weights), as stored. */
function weightBytes(name: string, v: OpenedVindex, key: string): Uint8Array {
  const entry = v.index.weights?.find((w) => w.key === key)
  if (!entry)
    throw new HostError(
      `model "${name}": ${v.files.where} has no weight "${key}"; extract it with --level inference`,
      'XX001',
    )
  let file = v.weightFiles.get(entry.file)
  if (!file) {
    file = withVindexErrors(name, v.files.where, () => {
      const bytes = checked(v, entry.file, required(v.files, entry.file))
      checkWeightFileSize(
        entry.file,
        weightFileEnds(v.index.weights ?? []).get(entry.file) ?? 0,
        bytes.length,
      )
      return bytes
    })
    v.weightFiles.set(entry.file, file)
  }
  if (entry.offset + entry.length > file.length)
    throw new HostError(
      `model "${name}": ${v.files.where}/${entry.file} is truncated (weight "${key}" ends at ` +
        `${entry.offset + entry.length}, the file has ${file.length} bytes)`,
      'XX001',
    )
  return file.subarray(entry.offset, entry.offset + entry.length)
}

/** Keep in step with extension/src/forward.h (ForwardConfigWord). */
const FORWARD_CONFIG_VERSION = 1
const ROPE_SCALING_CODES: Partial<Record<string, number>> = { linear: 1, llama3: 2 }
const ACTIVATION_CODES: Partial<Record<string, number>> = {
  silu: 0,
  swish: 0,
  gelu_pytorch_tanh: 1,
  gelu_new: 1,
  gelu_fast: 1,
  gelu: 2,
}

/**
 * Whether each layer attends through a sliding window: config.json's
 * layer_types when present, else the family's rule (Gemma 2 alternates from
 * layer 0; Gemma 3 has one global layer per sliding_window_pattern; Mistral
 * slides everywhere when it has a window; Qwen2/3 only say so in layer_types).
 */
function slidingLayers(index: VindexIndex): number[] {
  const c = modelConfigFromIndex(index)
  const n = index.num_layers
  if (c.layerTypes && c.layerTypes.length === n)
    return c.layerTypes.map((t) => (t === 'sliding_attention' ? 1 : 0))
  if (!c.slidingWindow) return new Array<number>(n).fill(0)
  return Array.from({ length: n }, (_, l) => {
    if (c.family === 'gemma2') return (l + 1) % 2 ? 1 : 0
    if (c.family === 'gemma3') return (l + 1) % (c.slidingWindowPattern ?? 6) ? 1 : 0
    return c.family === 'mistral' ? 1 : 0
  })
}

/** The architecture C's forward pass needs, as float64 words (forward.h). */
function encodeForwardConfig(index: VindexIndex): Uint8Array {
  const c = modelConfigFromIndex(index)
  const rs = c.ropeScaling
  const eos = Array.isArray(c.eosTokenId) ? (c.eosTokenId[0] ?? -1) : (c.eosTokenId ?? -1)
  const words = [
    FORWARD_CONFIG_VERSION,
    c.numHeads,
    c.numKvHeads,
    c.headDim,
    c.intermediateSize,
    c.maxPositionEmbeddings ?? 0,
    c.normType === 'layernorm' ? 1 : 0,
    c.normWeightOffset,
    c.normEps,
    c.positionEmbedding === 'learned' ? 1 : 0,
    c.ropeTheta ?? 0,
    c.ropeLocalTheta ?? 0,
    rs ? (ROPE_SCALING_CODES[rs.rope_type] ?? 99) : 0,
    rs?.factor ?? 1,
    Number(rs?.low_freq_factor ?? 1),
    Number(rs?.high_freq_factor ?? 4),
    Number(rs?.original_max_position_embeddings ?? 8192),
    ACTIVATION_CODES[c.activation] ?? 99,
    c.ffnType === 'plain' ? 1 : 0,
    c.tieWordEmbeddings ? 1 : 0,
    c.attentionBias ? 1 : 0,
    c.attentionOutputBias ? 1 : 0,
    c.mlpBias ? 1 : 0,
    c.qkNorm ? 1 : 0,
    c.sandwichNorms ? 1 : 0,
    c.slidingWindow ?? 0,
    c.queryPreAttnScalar ?? 0,
    c.attnLogitSoftcapping ?? 0,
    c.finalLogitSoftcapping ?? 0,
    eos,
    ...slidingLayers(index),
  ]
  return new Uint8Array(Float64Array.from(words).buffer)
}

/** Layer `layer`'s down_meta token ids, [features x top_k] int32. */
function downTokens(v: OpenedVindex, layer: number): Uint8Array {
  const n = v.index.layers[layer]?.num_features ?? 0
  const k = v.index.down_top_k
  const out = new Int32Array(n * k)
  for (let f = 0; f < n; f++) {
    const { ids } = v.downMeta.topTokens(layer, f)
    for (let i = 0; i < k; i++) out[f * k + i] = ids[i]!
  }
  return new Uint8Array(out.buffer)
}

/** Per feature of a layer its down_meta logits (same order as downTokens), f32. */
function downLogits(v: OpenedVindex, layer: number): Uint8Array {
  const n = v.index.layers[layer]?.num_features ?? 0
  const k = v.index.down_top_k
  const out = new Float32Array(n * k)
  for (let f = 0; f < n; f++) {
    const { logits } = v.downMeta.topTokens(layer, f)
    for (let i = 0; i < k; i++) out[f * k + i] = logits[i]!
  }
  return new Uint8Array(out.buffer)
}

/**
 * The layer bands describe() reports: the vindex's own, else LARQL's rule
 * for the family, else (LARQL sets none below 8 layers) the same 40/40/20
 * proportions at any depth.
 */
export function bandOfEachLayer(index: VindexIndex): number[] {
  const n = index.num_layers
  const bands = index.layer_bands ?? layerBandsFor(index.family, n)
  const syntaxLast = bands ? bands.syntax[1] : Math.floor((n * 2) / 5) - 1
  const knowledgeLast = bands ? bands.knowledge[1] : Math.floor((n * 4) / 5) - 1
  return Array.from({ length: n }, (_, l) =>
    l <= syntaxLast
      ? BAND_CODES.syntax
      : l <= knowledgeLast
        ? BAND_CODES.knowledge
        : BAND_CODES.output,
  )
}

function encodeMeta(index: VindexIndex, level: number): Uint8Array {
  const L = index.num_layers
  const words = new Int32Array(9 + 2 * L)
  const f32 = new Float32Array(1)
  f32[0] = index.embed_scale
  words.set([
    MODEL_META_VERSION,
    L,
    index.hidden_size,
    index.vocab_size,
    index.dtype === 'f16' ? 1 : 0,
    index.dtype === 'f16' ? 1 : 0,
    index.down_top_k,
    new Int32Array(f32.buffer)[0]!,
    Math.max(0, level),
  ])
  index.layers.forEach((l, i) => (words[9 + i] = l.num_features))
  bandOfEachLayer(index).forEach((b, i) => (words[9 + L + i] = b))
  const strings = encoder.encode(`${index.model}\0${index.family}\0`)
  const out = new Uint8Array(words.byteLength + strings.length)
  out.set(new Uint8Array(words.buffer), 0)
  out.set(strings, words.byteLength)
  return out
}

const SQLSTATE_OF: Partial<Record<string, string>> = {
  MISSING_FILE: '58P01',
  TRUNCATED: 'XX001',
  SIZE_MISMATCH: 'XX001',
  BAD_MAGIC: 'XX001',
  DIMENSION_MISMATCH: 'XX001',
  CHECKSUM_MISMATCH: 'XX001',
  BAD_JSON: 'XX001',
  INVALID_INDEX: 'XX001',
  UNKNOWN_DTYPE: '0A000',
  UNSUPPORTED_VERSION: '0A000',
  UNSUPPORTED_ARCHITECTURE: '0A000',
}

/** Vindex defects as SQL errors that name the model and the file. */
function withVindexErrors<T>(name: string, where: string, f: () => T): T {
  try {
    return f()
  } catch (e) {
    if (e instanceof VindexError)
      throw new HostError(
        `model "${name}": ${where}/${e.file ?? ''}: ${e.message}`,
        SQLSTATE_OF[e.code] ?? 'XX001',
      )
    if (e instanceof HostError) throw e
    // anything else is a vindex the validation did not foresee: still corrupt data
    throw new HostError(
      `model "${name}": ${where}: the vindex is malformed (${e instanceof Error ? e.message : String(e)}); re-extract it`,
      'XX001',
    )
  }
}
