/** What the page asks the database worker (db.worker.ts) through comlink. */
export interface QueryResult {
  rows: Record<string, unknown>[]
  fields: string[]
  ms: number
}

export interface Progress {
  stage: string
  done: number
  total: number
}

export interface OpenResult {
  /** the demo model was already in the (IndexedDB) database */
  persisted: boolean
  postgres: string
  pgInfer: string
  vector: string | null
}

export interface DbApi {
  /**
   * Opens the database (IndexedDB unless `memory`), creating the extensions;
   * `base` is the page's base URL, where the demo model and data are served.
   */
  open(memory: boolean, base: string): Promise<OpenResult>
  /** Registers the demo model and sample tables unless they exist. */
  loadDemo(onProgress: (p: Progress) => void): Promise<void>
  /** Registers a model from the bytes of a vindex .tar/.tar.gz the user picked. */
  uploadModel(name: string, bytes: Uint8Array, level: 'browse' | 'inference'): Promise<string>
  /** Registers a model from a vindex served over http(s), stored in the database. */
  addModelFromUrl(
    name: string,
    url: string,
    level: 'browse' | 'inference',
    onProgress: (p: Progress) => void,
  ): Promise<string>
  /**
   * Starts a compute worker beside the database's and sets infer.compute for
   * the session: 'webgpu' (navigator.gpu) runs gate passes and forward steps
   * on the GPU, 'onnx' on onnxruntime-web. What serves it (the adapter's
   * name), or an error saying why nothing can.
   */
  useCompute(backend: 'webgpu' | 'onnx'): Promise<string>
  query(sql: string, params?: unknown[]): Promise<QueryResult>
  /** A script of several statements; the last statement's rows. */
  exec(sql: string): Promise<QueryResult>
}
