/**
 * Installs the host's hooks where extension/src/host.c finds them: each
 * HostBridge method becomes a WebAssembly function-table entry
 * (Module.addFunction, which compiles a small wasm wrapper: allowed by
 * 'wasm-unsafe-eval'), and the table indexes are published to C in the
 * environment variable PGLITE_INFER_HOST before the backend starts. No
 * JavaScript source is eval'ed, as EM_JS hooks would need, so pg_infer loads
 * under a Content-Security-Policy of script-src 'self' 'wasm-unsafe-eval'.
 */
import type { HostBridge } from './bridge.js'
import type { WasmModule } from './types.js'

/** Keep in step with HOST_HOOKS_VERSION in extension/src/host.c. */
export const HOST_HOOKS_VERSION = 'pgi2:'

/**
 * The hooks in the order of HostHook in extension/src/host.c, each with the
 * wasm signature of its C function pointer (return type first; i = i32, a
 * pointer or int; d = f64; v = void).
 */
export const HOST_HOOKS = [
  ['tokenize', 'iiiiii'],
  ['modelOpen', 'iiiiii'],
  ['modelRead', 'iiiiid'],
  ['modelFile', 'iii'],
  ['modelAdopt', 'iiiiii'],
  ['modelRelease', 'iii'],
  ['modelSync', 'iii'],
  ['modelTokenize', 'iiiii'],
  ['modelDecode', 'iiii'],
  ['normalize', 'iii'],
  ['computeGateTopK', 'iiiiiiiiiiiii'],
  ['computeLoadGate', 'iiiiiiiiiii'],
  ['computeDrop', 'ii'],
  ['computeLoadTensor', 'iiiiiiiiii'],
  ['computeLoadForward', 'iiiiii'],
  ['computeForwardStep', 'iiiiiiiii'],
  ['computeForwardEnd', 'ii'],
  ['computeStagePart', 'iiiiiiiiiid'],
  ['computeStageChunk', 'iiiiiiidiid'],
  ['computeCommitGate', 'iiiiii'],
  ['computeColumns', 'iiiiiii'],
  ['computeLens', 'iiiiii'],
  ['computeAutoForward', 'ii'],
  ['computeForwardSteps', 'iiiiiiiiii'],
  ['remoteRequest', 'iiiiiiiiii'],
  ['take', 'vii'],
  ['errorLength', 'i'],
  ['takeError', 'vii'],
] as const

/** What the emscripten Module offers for this (PGlite exports both). */
export interface HookableModule extends WasmModule {
  addFunction(fn: (...args: number[]) => number | void, signature: string): number
  ENV: Record<string, string>
}

export function installHostHooks(mod: HookableModule, bridge: HostBridge): void {
  const indexes = HOST_HOOKS.map(([name, signature]) => {
    const method = bridge[name] as (...args: unknown[]) => number | void
    // errorLength needs no module; every other hook reads or writes its heap
    const fn =
      name === 'errorLength'
        ? () => method.call(bridge)
        : (...args: number[]) => method.call(bridge, mod, ...args)
    return mod.addFunction(fn, signature)
  })
  mod.ENV.PGLITE_INFER_HOST = HOST_HOOKS_VERSION + indexes.join(',')
}
