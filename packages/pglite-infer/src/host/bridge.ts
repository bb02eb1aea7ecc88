import { TokenizerCache } from './tokenizers.js'
import { HostError, type InferHost, type WasmModule } from './types.js'

const decoder = new TextDecoder('utf-8', { fatal: false })
const encoder = new TextEncoder()

/**
 * The JavaScript half of the host hooks in extension/src/host.c, installed
 * as Module.pgInferHost. Each hook reads its arguments out of the WASM heap,
 * calls the typed InferHost, and keeps the result (or the error) until C has
 * allocated memory for it and asks for it with take() / takeError().
 *
 * Nothing may throw across this boundary: an exception inside PGlite's
 * WebAssembly call would abort the backend, so every hook catches and
 * returns -1, and C raises the kept error as an SQL ERROR.
 */
export class HostBridge {
  private pending: Uint8Array | null = null
  private error: Uint8Array = new Uint8Array(0)

  constructor(private readonly host: InferHost) {}

  tokenize(
    mod: WasmModule,
    jsonPtr: number,
    jsonLen: number,
    textPtr: number,
    textLen: number,
    special: number,
  ): number {
    return this.run(() => {
      const json = readUtf8(mod, jsonPtr, jsonLen)
      const text = readUtf8(mod, textPtr, textLen)
      const ids = Int32Array.from(this.host.tokenize(json, text, special !== 0))
      return new Uint8Array(ids.buffer)
    })
  }

  /** Copies the pending result into C's buffer at dst. */
  take(mod: WasmModule, dst: number, len: number): void {
    const result = this.pending ?? new Uint8Array(0)
    mod.HEAPU8.set(result.subarray(0, len), dst)
    this.pending = null
  }

  /** Bytes C must allocate for takeError(): SQLSTATE + message + NUL. */
  errorLength(): number {
    return this.error.length + 1
  }

  takeError(mod: WasmModule, dst: number, len: number): void {
    const n = Math.min(this.error.length, len - 1)
    mod.HEAPU8.set(this.error.subarray(0, n), dst)
    mod.HEAPU8[dst + n] = 0
    this.error = new Uint8Array(0)
  }

  private run(hook: () => Uint8Array): number {
    try {
      this.pending = hook()
      return this.pending.length
    } catch (e) {
      this.pending = null
      const sqlstate = e instanceof HostError ? e.sqlstate : '38000'
      const message = e instanceof Error ? e.message : String(e)
      // PostgreSQL messages are C strings: no NUL inside.
      this.error = encoder.encode(sqlstate + message.replaceAll('\0', ' '))
      return -1
    }
  }
}

function readUtf8(mod: WasmModule, ptr: number, len: number): string {
  // HEAPU8 is re-created when memory grows: read it at each call.
  return decoder.decode(mod.HEAPU8.subarray(ptr, ptr + len))
}

/** The host that ships with pglite-infer: @huggingface/tokenizers, ... */
export function defaultHost(): InferHost {
  const tokenizers = new TokenizerCache()
  return {
    tokenize(tokenizerJson, text, addSpecialTokens) {
      return tokenizers.get(tokenizerJson).encode(text, { add_special_tokens: addSpecialTokens })
        .ids
    },
  }
}
