/**
 * @pglite-infer/compute: the TypeScript half of pg_infer's compute seam
 * (extension/src/compute.h is the C half) and its backends.
 *
 * The browser-safe entry: types, the top-k merge and the synchronous client
 * (which starts its worker only under Node). The ONNX Runtime backend itself
 * is @pglite-infer/compute/onnx (Node).
 */
export * from './types.js'
export { hitBefore, compareHits, mergeTopK, halfToFloat, type Hit } from './topk.js'
export { ComputeClient, type ComputeClientOptions } from './client.js'
