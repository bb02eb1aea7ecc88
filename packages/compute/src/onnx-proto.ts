/**
 * onnx-proto (ONNX's protobuf classes), for the graphs built in-process
 * (forward.ts, onnx.ts). It is CommonJS whose exports Node cannot list for
 * ESM, so it comes in as the default import (module.exports) in Node and in
 * bundlers alike; no `require`, so the browser's compute worker can use it.
 */
import protoModule from 'onnx-proto'

export type OnnxProto = typeof import('onnx-proto')

export function onnxProto(): OnnxProto {
  return protoModule as OnnxProto
}
