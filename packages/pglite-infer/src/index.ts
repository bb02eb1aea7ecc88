/**
 * pglite-infer: PGlite with the pg_infer extension and its host.
 *
 *   import { PGlite } from '@electric-sql/pglite'
 *   import { pgInfer } from 'pglite-infer'
 *   const db = await PGlite.create({ extensions: { pgInfer } })
 *   await db.exec('CREATE EXTENSION pg_infer')
 */
import type { Extension } from '@electric-sql/pglite'
import { HostBridge, defaultHost } from './host/bridge.js'
import { installHostHooks, type HookableModule } from './host/hooks.js'
import type { HostOptions, InferHost, WasmModule } from './host/types.js'
import { inferNamespace, type EmscriptenFSWriter, type InferNamespace } from './namespace.js'

export { HostError, type HostOptions, type InferHost } from './host/types.js'
export { defaultHost } from './host/bridge.js'
export { downloadVindex } from './namespace.js'
export type {
  CreateModelOptions,
  DownloadProgress,
  InferNamespace,
  ModelInfo,
  ModelSource,
  VindexFiles,
} from './namespace.js'

/** Where the WASM build (wasm/build.sh) leaves the extension bundle. */
export const bundleUrl = new URL('../bundle/pg_infer.tar.gz', import.meta.url)

export interface PgInferOptions extends HostOptions {
  /** Replace some host hooks (tests, custom tokenizers); the rest stay default. */
  host?: Partial<InferHost>
}

/**
 * A pg_infer extension for PGlite with its own host. Its namespace
 * (db.<key> for `extensions: { <key>: pgInfer }`) is an InferNamespace.
 */
export function createPgInfer(options: PgInferOptions = {}): Extension<InferNamespace> {
  return {
    name: 'pg_infer',
    setup: async (pg, emscriptenOpts) => {
      const host: InferHost = { ...defaultHost(), ...options.host }
      const bridge = new HostBridge(host, options)
      let module: (WasmModule & { FS?: EmscriptenFSWriter }) | undefined
      const preRun = [emscriptenOpts?.preRun ?? []].flat()
      // preRun hands us the emscripten Module before the backend starts:
      // its file system (db.infer.createModel), and the place to install
      // the host hooks extension/src/host.c calls (host/hooks.ts).
      return {
        emscriptenOpts: {
          ...emscriptenOpts,
          preRun: [
            ...preRun,
            (mod: HookableModule & { FS?: EmscriptenFSWriter }) => {
              module = mod
              installHostHooks(mod, bridge)
            },
          ],
        },
        bundlePath: bundleUrl,
        namespaceObj: inferNamespace(
          pg,
          () => module?.FS,
          () => bridge.compute,
        ),
      }
    },
  }
}

/** The pg_infer extension with the default host. */
export const pgInfer: Extension<InferNamespace> = createPgInfer()
