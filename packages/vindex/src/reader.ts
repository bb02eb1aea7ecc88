import type { ByteSource, FileSet } from './bytes.js'
import { MemoryFileSet, readAll } from './bytes.js'
import type { ModelConfig } from './config.js'
import { DownMeta, type FeatureTopTokens } from './downmeta.js'
import { decodeToF32 } from './dtype.js'
import { VindexError } from './errors.js'
import { FILES, levelAtLeast, type VindexIndex, type WeightEntry } from './format.js'
import { modelConfigFromIndex } from './modelconfig.js'
import { sha256Hex, sha256HexSync } from './sha256.js'
import { loadTokenizer, type Tokenizer } from './tokenizer.js'
import { bytesPerElement, checkWeightEntries, parseIndex } from './validate.js'

export interface OpenOptions {
  /** Verify the sha256 of every file listed in index.json "checksums". */
  verifyChecksums?: boolean
}

/**
 * Opens and validates a vindex from any file set: a directory
 * (openVindexDir in @pglite-infer/vindex/node), URLs (urlFileSet) or bytes
 * in memory (vindexFromBytes). Browse files are loaded and checked at once;
 * inference weight files are size-checked now and read on first use.
 */
export async function openVindex(files: FileSet, options: OpenOptions = {}): Promise<Vindex> {
  const index = parseIndex(new TextDecoder().decode(await readRequired(files, FILES.index)))
  const bpe = bytesPerElement(index)
  const gate = await readSized(
    files,
    FILES.gateVectors,
    index.layers.reduce((s, l) => s + l.length, 0),
  )
  const embeddings = await readSized(
    files,
    FILES.embeddings,
    index.vocab_size * index.hidden_size * bpe,
  )
  const downMeta = new DownMeta(
    await readRequired(files, FILES.downMeta),
    index.layers.map((l) => l.num_features),
    index.down_top_k,
  )
  const tokenizerJson = await readRequired(files, FILES.tokenizer)
  checkJson(tokenizerJson, FILES.tokenizer)
  const configSrc = await files.open(FILES.tokenizerConfig)
  const tokenizerConfig = configSrc ? await readAll(configSrc) : undefined
  const weights = await loadWeightManifest(files, index)
  const v = new Vindex(
    files,
    index,
    gate,
    embeddings,
    downMeta,
    tokenizerJson,
    tokenizerConfig,
    weights,
  )
  await v.checkWeightFileSizes()
  if (options.verifyChecksums) await v.verifyChecksums()
  return v
}

/** The browse-level data of a vindex, as openVindexSync returns it. */
export interface BrowseFiles {
  index: VindexIndex
  gate: Uint8Array
  embed: Uint8Array
  downMeta: DownMeta
}

/**
 * openVindex's checks of the browse-level files, for callers that cannot
 * await (a host hook inside a SQL call): `read` returns a whole file, or
 * undefined when it is missing.
 */
export function openVindexSync(
  read: (name: string) => Uint8Array | undefined,
  options: OpenOptions = {},
): BrowseFiles {
  const required = (name: string): Uint8Array => {
    const bytes = read(name)
    if (!bytes) throw missing(name)
    return bytes
  }
  const sized = (name: string, expected: number): Uint8Array => {
    const bytes = required(name)
    checkSize(name, expected, bytes.byteLength)
    return bytes
  }
  const index = parseIndex(new TextDecoder().decode(required(FILES.index)))
  const gate = sized(
    FILES.gateVectors,
    index.layers.reduce((s, l) => s + l.length, 0),
  )
  const embed = sized(
    FILES.embeddings,
    index.vocab_size * index.hidden_size * bytesPerElement(index),
  )
  const downBytes = required(FILES.downMeta)
  const downMeta = new DownMeta(
    downBytes,
    index.layers.map((l) => l.num_features),
    index.down_top_k,
  )
  checkDownMetaTokens(downMeta, index)
  // after the checks of shape, which say more precisely what is wrong
  if (options.verifyChecksums) {
    verifyChecksumSync(index, FILES.gateVectors, gate)
    verifyChecksumSync(index, FILES.embeddings, embed)
    verifyChecksumSync(index, FILES.downMeta, downBytes)
  }
  return { index, gate, embed, downMeta }
}

/**
 * Checks one file against index.json's "checksums" (sha256). Every file a
 * vindex is read from must be listed: a vindex without checksums, or with an
 * entry removed, could hide any change (callers that trust their source skip
 * this check: infer.verify_checksums = off).
 */
export function verifyChecksumSync(index: VindexIndex, name: string, bytes: Uint8Array): void {
  const sums = index.checksums
  if (!sums || Object.keys(sums).length === 0)
    throw new VindexError('CHECKSUM_MISMATCH', 'index.json lists no checksums to verify', {
      file: name,
      hint: 're-extract the vindex (pglite-infer extract writes checksums), or SET infer.verify_checksums = off to trust it unverified',
    })
  const expected = sums[name]
  if (expected === undefined)
    throw new VindexError('CHECKSUM_MISMATCH', 'file is not listed in index.json checksums', {
      file: name,
      hint: 'a vindex with checksums lists all its files; re-extract or re-download it',
    })
  const found = sha256HexSync(bytes)
  if (found !== expected.toLowerCase())
    throw new VindexError('CHECKSUM_MISMATCH', 'sha256 does not match index.json', {
      file: name,
      expected,
      found,
      hint: 'the file was modified or corrupted; re-download or re-extract it',
    })
}

/** A file set over in-memory bytes, e.g. files fetched as one bundle. */
export function vindexFromBytes(
  files: Map<string, Uint8Array> | Record<string, Uint8Array>,
): FileSet {
  return new MemoryFileSet(files)
}

/**
 * A file set over `${baseUrl}/${name}` using fetch (browsers, Node 20).
 * A 404 means "missing"; each file is fetched once, on first use.
 */
export function urlFileSet(
  baseUrl: string | URL,
  fetchImpl: typeof fetch = globalThis.fetch,
): FileSet {
  const base = new URL(String(baseUrl).endsWith('/') ? String(baseUrl) : `${String(baseUrl)}/`)
  const cache = new Map<string, Promise<Uint8Array | undefined>>()
  const get = (name: string): Promise<Uint8Array | undefined> => {
    if (!cache.has(name)) cache.set(name, fetchFile(fetchImpl, new URL(name, base), name))
    return cache.get(name)!
  }
  return {
    async open(name: string): Promise<ByteSource | undefined> {
      const bytes = await get(name)
      if (!bytes) return undefined
      return {
        name,
        size: async () => bytes.byteLength,
        read: async (o: number, n: number) => bytes.subarray(o, o + n),
      }
    },
  }
}

async function fetchFile(
  fetchImpl: typeof fetch,
  url: URL,
  name: string,
): Promise<Uint8Array | undefined> {
  const res = await fetchImpl(url)
  if (res.status === 404) return undefined
  if (!res.ok) {
    throw new VindexError('FETCH_FAILED', `HTTP ${res.status} fetching ${url.href}`, { file: name })
  }
  return new Uint8Array(await res.arrayBuffer())
}

async function readRequired(files: FileSet, name: string): Promise<Uint8Array> {
  const src = await files.open(name)
  if (!src) throw missing(name)
  return readAll(src)
}

/** Every down_meta token id names a vocabulary entry (describe() prints them). */
function checkDownMetaTokens(downMeta: DownMeta, index: VindexIndex): void {
  for (let l = 0; l < index.num_layers; l++) {
    const n = index.layers[l]!.num_features
    for (let f = 0; f < n; f++) {
      const { ids } = downMeta.topTokens(l, f)
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!
        if (!Number.isInteger(id) || id < 0 || id >= index.vocab_size)
          throw new VindexError(
            'INVALID_INDEX',
            `token id ${id} of layer ${l} feature ${f} is outside the vocabulary`,
            {
              file: FILES.downMeta,
              expected: `0..${index.vocab_size - 1}`,
              found: id,
              hint: 're-extract the vindex',
            },
          )
      }
    }
  }
}

/** Reads a file whose exact size index.json determines. */
async function readSized(files: FileSet, name: string, expected: number): Promise<Uint8Array> {
  const bytes = await readRequired(files, name)
  checkSize(name, expected, bytes.byteLength)
  return bytes
}

function checkSize(name: string, expected: number, found: number): void {
  if (found < expected) {
    throw new VindexError('TRUNCATED', 'file is truncated', {
      file: name,
      expected: `${expected} bytes`,
      found: `${found} bytes`,
      hint: 're-extract or re-download the vindex',
    })
  }
  if (found > expected) {
    throw new VindexError('SIZE_MISMATCH', 'file is larger than index.json describes', {
      file: name,
      expected: `${expected} bytes`,
      found: `${found} bytes`,
      hint: 'index.json and the data files come from different extractions',
    })
  }
}

/** Where each weight file's last entry ends. */
export function weightFileEnds(entries: readonly WeightEntry[]): Map<string, number> {
  const ends = new Map<string, number>()
  for (const e of entries) ends.set(e.file, Math.max(ends.get(e.file) ?? 0, e.offset + e.length))
  return ends
}

/**
 * A weight file ends where its last entry ends, padded to 4 bytes: shorter
 * is truncated, longer comes from another extraction.
 */
export function checkWeightFileSize(file: string, end: number, size: number): void {
  if (size < end) checkSize(file, end, size)
  if (size > ((end + 3) & ~3)) checkSize(file, (end + 3) & ~3, size)
}

/** Parsing here (not lazily in tokenizer()) so a broken file fails at open. */
function checkJson(bytes: Uint8Array, name: string): void {
  try {
    JSON.parse(new TextDecoder().decode(bytes))
  } catch (e) {
    throw new VindexError('BAD_JSON', `not valid JSON: ${(e as Error).message}`, {
      file: name,
      hint: 're-extract or re-download the vindex',
    })
  }
}

function missing(name: string): VindexError {
  return new VindexError('MISSING_FILE', 'required file is missing', {
    file: name,
    hint: 'copy the complete vindex directory or re-extract it',
  })
}

/** index.json "weights" (ours) or weight_manifest.json (LARQL). */
async function loadWeightManifest(files: FileSet, index: VindexIndex): Promise<WeightEntry[]> {
  if (!levelAtLeast(index.extract_level, 'attention')) return []
  if (index.weights) return index.weights
  const src = await files.open(FILES.weightManifest)
  if (!src) throw missing(FILES.weightManifest)
  let entries: unknown
  try {
    entries = JSON.parse(new TextDecoder().decode(await readAll(src)))
  } catch {
    throw new VindexError('BAD_JSON', 'not valid JSON', { file: FILES.weightManifest })
  }
  checkWeightEntries(entries, FILES.weightManifest, bytesPerElement(index))
  return entries as WeightEntry[]
}

export class Vindex {
  readonly config: ModelConfig
  private embedF32: Float32Array | undefined
  private tok: Tokenizer | undefined
  private readonly weightByKey: Map<string, WeightEntry>

  constructor(
    private readonly files: FileSet,
    readonly index: VindexIndex,
    private readonly gateBytes: Uint8Array,
    private readonly embedBytes: Uint8Array,
    readonly downMeta: DownMeta,
    private readonly tokenizerJson: Uint8Array,
    private readonly tokenizerConfig: Uint8Array | undefined,
    readonly weightEntries: WeightEntry[],
  ) {
    this.config = modelConfigFromIndex(index)
    this.weightByKey = new Map(weightEntries.map((e) => [e.key, e]))
  }

  get numLayers(): number {
    return this.index.num_layers
  }
  get hiddenSize(): number {
    return this.index.hidden_size
  }
  get vocabSize(): number {
    return this.index.vocab_size
  }

  /** Raw gate_vectors.bin bytes (what C code copies into WASM memory). */
  gateVectorBytes(): Uint8Array {
    return this.gateBytes
  }

  /** Raw embeddings.bin bytes. */
  embeddingBytes(): Uint8Array {
    return this.embedBytes
  }

  /** Layer's gate rows as f32, [num_features x hidden] row-major. */
  gateVectors(layer: number): Float32Array {
    const l = this.index.layers[layer]
    if (!l)
      throw new VindexError('INVALID_ARGUMENT', `no layer ${layer}`, { file: FILES.gateVectors })
    const bytes = this.gateBytes.subarray(l.offset, l.offset + l.length)
    return this.decode(bytes)
  }

  /** One gate row as f32. */
  gateRow(layer: number, feature: number): Float32Array {
    const l = this.index.layers[layer]
    if (!l || feature < 0 || feature >= l.num_features) {
      throw new VindexError(
        'INVALID_ARGUMENT',
        `no gate row for layer ${layer} feature ${feature}`,
        {
          file: FILES.gateVectors,
        },
      )
    }
    const rowBytes = this.hiddenSize * bytesPerElement(this.index)
    const o = l.offset + feature * rowBytes
    return this.decode(this.gateBytes.subarray(o, o + rowBytes))
  }

  /** The whole unscaled embedding as f32 [vocab x hidden] (decoded once). */
  embeddings(): Float32Array {
    this.embedF32 ??= this.decode(this.embedBytes)
    return this.embedF32
  }

  /** One token's unscaled embedding row. */
  embeddingRow(tokenId: number): Float32Array {
    if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= this.vocabSize) {
      throw new VindexError('INVALID_ARGUMENT', `token id ${tokenId} out of range`, {
        file: FILES.embeddings,
        expected: `0..${this.vocabSize - 1}`,
        found: tokenId,
      })
    }
    const h = this.hiddenSize
    return this.embeddings().subarray(tokenId * h, (tokenId + 1) * h)
  }

  /** down_meta top tokens of one feature. */
  topTokens(layer: number, feature: number): FeatureTopTokens {
    return this.downMeta.topTokens(layer, feature)
  }

  /** tokenizer.json (+ tokenizer_config.json when present), built once. */
  tokenizer(): Tokenizer {
    this.tok ??= loadTokenizer(this.tokenizerJson, this.tokenizerConfig)
    return this.tok
  }

  hasWeight(key: string): boolean {
    return this.weightByKey.has(key)
  }

  /** One inference tensor decoded to f32 ([out, in] row-major for matrices). */
  async weight(key: string): Promise<{ entry: WeightEntry; data: Float32Array }> {
    const entry = this.weightByKey.get(key)
    if (!entry) {
      throw new VindexError(
        'MISSING_TENSOR',
        `no weight ${key} (extract level ${this.index.extract_level})`,
        {
          file: FILES.weightManifest,
          hint: 'extract with --level inference',
        },
      )
    }
    const src = await this.files.open(entry.file)
    if (!src) throw missing(entry.file)
    return { entry, data: this.decode(await src.read(entry.offset, entry.length)) }
  }

  /** Each weight file must reach the end of its last entry. */
  async checkWeightFileSizes(): Promise<void> {
    for (const [file, end] of weightFileEnds(this.weightEntries)) {
      const src = await this.files.open(file)
      if (!src) throw missing(file)
      checkWeightFileSize(file, end, await src.size())
    }
  }

  /** Recomputes the sha256 of every file in index.json "checksums". */
  async verifyChecksums(): Promise<void> {
    for (const [name, expected] of Object.entries(this.index.checksums ?? {})) {
      const src = await this.files.open(name)
      if (!src) throw missing(name)
      const found = await sha256Hex(await readAll(src))
      if (found !== expected.toLowerCase()) {
        throw new VindexError('CHECKSUM_MISMATCH', 'sha256 does not match index.json', {
          file: name,
          expected,
          found,
          hint: 'the file was modified or corrupted; re-download or re-extract it',
        })
      }
    }
  }

  private decode(bytes: Uint8Array): Float32Array {
    if (this.index.dtype === 'f32' && bytes.byteOffset % 4 === 0) {
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    }
    return decodeToF32(bytes, this.index.dtype)
  }
}
