/**
 * @pglite-infer/vindex: read, validate and write LARQL-compatible vindexes,
 * and extract them from HuggingFace checkpoints. Everything exported here
 * runs in browsers and Node; file-system helpers and the worker pool live in
 * @pglite-infer/vindex/node.
 */
export {
  VindexError,
  isVindexError,
  type VindexErrorCode,
  type VindexErrorDetails,
} from './errors.js'
export {
  bytesPerElement as dtypeBytes,
  decodeToF32,
  encodeFromF32,
  f16BitsToF32,
  f32ToF16Bits,
  roundToF16,
  type SourceDtype,
  type StorageDtype,
} from './dtype.js'
export {
  MemoryByteSource,
  MemoryFileSet,
  readAll,
  readText,
  type ByteSource,
  type FileSet,
} from './bytes.js'
export {
  SafetensorsCheckpoint,
  normalizeTensorName,
  readSafetensorsHeader,
  type TensorInfo,
} from './safetensors.js'
export {
  SUPPORTED_FAMILIES,
  detectFamily,
  parseModelConfig,
  type ModelConfig,
  type ModelFamily,
  type RopeScaling,
} from './config.js'
export { modelConfigFromIndex, toVindexModelConfig } from './modelconfig.js'
export {
  downRef,
  embedKey,
  gateRef,
  globalWeightRefs,
  layerWeightRefs,
  type TensorRef,
  type WeightFile,
  type WeightRef,
} from './tensors.js'
export { loadTokenizer, Tokenizer } from './tokenizer.js'
export {
  DOWN_META_HEADER_BYTES,
  DOWN_META_MAGIC,
  DOWN_META_VERSION,
  EXTRACT_LEVELS,
  FILES,
  VINDEX_VERSION,
  align4,
  downMetaFileBytes,
  downMetaRecordBytes,
  layerBandsFor,
  levelAtLeast,
  type ExtractLevel,
  type LayerBands,
  type VindexIndex,
  type VindexLayerInfo,
  type VindexModelConfig,
  type VindexSourceInfo,
  type WeightEntry,
} from './format.js'
export {
  DownMeta,
  encodeDownMetaHeader,
  encodeDownMetaLayer,
  type FeatureTopTokens,
} from './downmeta.js'
export { computeTopK, type TopKJob } from './topk.js'
export {
  InlineEngine,
  type DownMetaEngine,
  type DownMetaRequest,
  type DownMetaResult,
} from './engine.js'
export { MemorySink, type OutputFile, type OutputSink, type WrittenFile } from './sink.js'
export { sha256Hex } from './sha256.js'
export { parseIndex } from './validate.js'
export {
  EXTRACTOR_VERSION,
  extractVindex,
  transpose,
  type ExtractOptions,
  type ExtractProgress,
  type ExtractResult,
} from './extract.js'
export {
  Vindex,
  openVindex,
  openVindexSync,
  verifyChecksumSync,
  checkWeightFileSize,
  weightFileEnds,
  urlFileSet,
  vindexFromBytes,
  type BrowseFiles,
  type OpenOptions,
} from './reader.js'
export { unsafeRegexReason, unsafeTokenizerRegex } from './regex-safety.js'
export { sha256HexSync } from './sha256.js'
