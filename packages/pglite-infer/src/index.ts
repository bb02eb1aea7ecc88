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
import { installTrapGuard, type TrapGuardModule } from './host/trap-guard.js'
import { computeChoice, type HostOptions, type InferHost, type WasmModule } from './host/types.js'
import { inferNamespace, type EmscriptenFSWriter, type InferNamespace } from './namespace.js'

export { HostError, type ComputeChoice, type HostOptions, type InferHost } from './host/types.js'
export { defaultHost } from './host/bridge.js'
export { RemoteCancel } from './host/remote-call.js'
export { downloadVindex } from './namespace.js'
export type {
  CreateModelOptions,
  DownloadProgress,
  InferNamespace,
  ModelInfo,
  ModelSource,
  VindexFiles,
} from './namespace.js'

/**
 * The PostgreSQL major version the extension bundle is built for, and the
 * PGlite releases that run it: keep in step with peerDependencies in
 * package.json (test/packaging/pack.test.ts checks).
 */
export const POSTGRES_MAJOR = 18
export const PGLITE_RANGE = '>=0.5.16 <0.6.0'

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
    setup: async (pg, emscriptenOpts, clientOnly) => {
      // The page side of a PGliteWorker: the database, its host and the
      // bundle live in the worker; here only db.infer, which works through
      // SQL (its file writes too).
      if (clientOnly)
        return {
          namespaceObj: inferNamespace(
            pg,
            () => undefined,
            () => {
              throw new Error(
                'pglite-infer: the compute backend runs beside the database, in the worker',
              )
            },
          ),
        }
      const host: InferHost = { ...defaultHost(), ...options.host }
      const bridge = new HostBridge(host, options)
      let module: (WasmModule & { FS?: EmscriptenFSWriter }) | undefined
      const preRun = [emscriptenOpts?.preRun ?? []].flat()
      // PGlite's signal for "run the error recovery" (its execProtocolRawSync)
      const longjmpStatus = (pg as { POSTGRES_MAIN_LONGJMP?: number }).POSTGRES_MAIN_LONGJMP
      // preRun hands us the emscripten Module before the backend starts:
      // its file system (db.infer.createModel), and the place to install
      // the host hooks extension/src/host.c calls (host/hooks.ts).
      return {
        emscriptenOpts: {
          ...emscriptenOpts,
          // Load side modules (pg_infer, pg_trgm, vector, ...) when
          // PostgreSQL dlopens them, not in emscripten's preload plugin.
          // That plugin instantiates every bundled .so concurrently while
          // the file system is mounted; when one of them fails its
          // symbol check it throws before __wasm_apply_data_relocs, and the
          // unrelocated copy stays registered: the first call into it
          // (pg_trgm's similarity(), say) traps or returns nothing.
          // docs/architecture.md, "Side modules load at dlopen".
          noWasmDecoding: true,
          preRun: [
            ...preRun,
            (mod: HookableModule & TrapGuardModule & { FS?: EmscriptenFSWriter }) => {
              module = mod
              installHostHooks(mod, bridge)
              // infer.compute's default (extension/src/guc.c compute_default)
              const chosen = computeChoice(options.compute).default
              if (chosen) mod.ENV.PGLITE_INFER_COMPUTE = chosen
              // a trap inside a statement becomes an SQL error instead of a
              // silently half-run statement (host/trap-guard.ts)
              if (longjmpStatus !== undefined) installTrapGuard(mod, longjmpStatus)
            },
          ],
        },
        bundlePath: bundleUrl,
        // Another PostgreSQL major cannot link the module (a LinkError at
        // CREATE EXTENSION): say so when the database starts, naming both.
        init: () => checkPostgresVersion(pg),
        namespaceObj: inferNamespace(
          pg,
          () => module?.FS,
          () => bridge.compute,
          () => bridge.webgpu,
        ),
      }
    },
  }
}

async function checkPostgresVersion(pg: {
  query<T>(sql: string): Promise<{ rows: T[] }>
}): Promise<void> {
  const { rows } = await pg.query<{ num: string; version: string }>(
    "select current_setting('server_version_num') as num, version() as version",
  )
  const num = Number(rows[0]?.num)
  if (Math.floor(num / 10000) === POSTGRES_MAJOR) return
  const running = rows[0]?.version.split(' on ')[0] ?? `PostgreSQL ${num}`
  throw new Error(
    `pglite-infer: pg_infer is built for PostgreSQL ${POSTGRES_MAJOR}, which @electric-sql/pglite ` +
      `${PGLITE_RANGE} provides; this PGlite runs ${running}. Install a PGlite in that range ` +
      `(npm install @electric-sql/pglite@"${PGLITE_RANGE}").`,
  )
}

/** The pg_infer extension with the default host. */
export const pgInfer: Extension<InferNamespace> = createPgInfer()
