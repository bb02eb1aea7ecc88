/**
 * Turns a WebAssembly trap inside a statement into an ordinary SQL error.
 *
 * PGlite runs each protocol message with `Module._PostgresMainLoopOnce()`
 * and, when that throws anything but its own longjmp signal, drops the
 * exception and reads the next message (@electric-sql/pglite 0.5,
 * execProtocolRawSync). A trap in Postgres or in any extension (a call
 * through a bad function pointer, an access out of bounds) or a JavaScript
 * exception escaping into the backend then leaves the statement half done:
 * its transaction is neither committed nor aborted, resources stay pinned,
 * and `error_context_stack` points into stack frames that no longer exist.
 * The statement looks successful; later the same address is pushed again,
 * the list becomes a cycle, and the next message Postgres reports (a
 * warning at commit, any error) loops forever in errfinish(): a process at
 * full CPU that no JavaScript timeout can stop.
 *
 * The guard wraps `_PostgresMainLoopOnce`. On a trap it starts an ErrorData
 * the way ereport(ERROR) does (errstart, errcode, errmsg, errhint: functions
 * every extension links against) and throws PGlite's longjmp signal, so
 * PGlite runs its own recovery (PostgresMainLongJmp: the error goes to the
 * client, the transaction is aborted, resources are released, the error
 * state is reset). The application gets SQLSTATE XX000 naming the trap; the
 * session keeps working.
 */

/** What the guard needs of the emscripten Module (PGlite exports all of it). */
export interface TrapGuardModule {
  HEAPU8: Uint8Array
  _PostgresMainLoopOnce?: () => void
  _errstart?: (elevel: number, domain: number) => number
  _errcode?: (sqlerrcode: number) => number
  _errmsg?: (fmt: number, varargs: number) => number
  _errhint?: (fmt: number, varargs: number) => number
  _malloc?: (size: number) => number
  _free?: (ptr: number) => void
  /** Addresses of C globals. */
  _error_context_stack?: number
  _PG_exception_stack?: number
  _InterruptHoldoffCount?: number
  _CritSectionCount?: number
  stackSave?: () => number
  stackRestore?: (sp: number) => void
}

/** elog.h: ERROR. */
const ELEVEL_ERROR = 21

/*
 * PostgreSQL 18 on wasm32 (utils/portal.h, portalmem.c, params.h): a
 * PortalData's `status` field, PORTAL_ACTIVE and PORTAL_FAILED; a portal's
 * name points into its hash entry, char portalname[NAMEDATALEN] followed by
 * the Portal pointer; ErrorContextCallback is { previous, callback, arg }.
 */
const PORTAL_STATUS_OFFSET = 80
const PORTAL_ACTIVE = 3
const PORTAL_FAILED = 5
const NAMEDATALEN = 64

/** elog.h's MAKE_SQLSTATE: six bits per character. */
export function makeSqlState(code: string): number {
  let v = 0
  for (let i = 0; i < 5; i++) v += ((code.charCodeAt(i) - 48) & 0x3f) << (6 * i)
  return v >>> 0
}

/**
 * A trap or a stray JavaScript error, as opposed to what the emscripten
 * runtime throws on purpose to unwind (ExitStatus and PGlite's longjmp
 * signal carry a `status`; longjmps are Emscripten* objects; `unwind` is a
 * string).
 */
export function isTrap(e: unknown): e is Error {
  if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) return true
  if (!(e instanceof Error) || 'status' in e) return false
  const kind = e.constructor?.name ?? ''
  return !kind.startsWith('Emscripten') && e.name !== 'ExitStatus'
}

/**
 * Wraps mod._PostgresMainLoopOnce (once). `longjmpStatus` is PGlite's
 * POSTGRES_MAIN_LONGJMP. `onTrap` hears of each trap (for logs). Does
 * nothing on a Module that lacks what it needs.
 */
export function installTrapGuard(
  mod: TrapGuardModule,
  longjmpStatus: number,
  onTrap: (e: Error) => void = () => undefined,
): boolean {
  const loopOnce = mod._PostgresMainLoopOnce
  const { _errstart, _errcode, _errmsg, _errhint, _malloc, _free, stackSave, stackRestore } = mod
  if (
    typeof loopOnce !== 'function' ||
    (loopOnce as { trapGuard?: true }).trapGuard ||
    !_errstart ||
    !_errcode ||
    !_errmsg ||
    !_errhint ||
    !_malloc ||
    !_free ||
    !stackSave ||
    !stackRestore ||
    typeof mod._error_context_stack !== 'number' ||
    typeof mod._PG_exception_stack !== 'number' ||
    typeof mod._InterruptHoldoffCount !== 'number' ||
    typeof mod._CritSectionCount !== 'number'
  )
    return false
  const word = (address: number) => ({
    get: () => new Uint32Array(mod.HEAPU8.buffer)[address >>> 2]!,
    set: (v: number) => (new Uint32Array(mod.HEAPU8.buffer)[address >>> 2] = v),
  })
  const contextStack = word(mod._error_context_stack)
  const exceptionStack = word(mod._PG_exception_stack)
  const holdoff = word(mod._InterruptHoldoffCount)
  const critical = word(mod._CritSectionCount)
  const guarded = () => {
    const sp = stackSave()
    const contexts = contextStack.get()
    const handler = exceptionStack.get()
    try {
      loopOnce()
    } catch (e) {
      if (!isTrap(e)) throw e
      // The trapped frames are gone, and with them what PG_TRY blocks and
      // error-context pushes inside them would have restored: put back
      // the C stack, the longjmp target (else the next ERROR jumps into a
      // dead frame) and the context callbacks as they were when the
      // message began (the dead ones would be called with dangling
      // arguments).
      stackRestore(sp)
      failTrappedPortal(mod.HEAPU8, contextStack.get(), contexts)
      contextStack.set(contexts)
      exceptionStack.set(handler)
      onTrap(e)
      const cstring = (s: string) => {
        // errmsg() formats its argument: keep every % literal
        const bytes = new TextEncoder().encode(s.replaceAll('%', '%%'))
        const ptr = _malloc(bytes.length + 1)
        mod.HEAPU8.set(bytes, ptr)
        mod.HEAPU8[ptr + bytes.length] = 0
        return ptr
      }
      const message = cstring(
        `the statement stopped on a WebAssembly trap and was rolled back: ${e.name}: ${e.message}`,
      )
      const hint = cstring(
        'pglite-infer caught it and aborted the transaction; the session is still usable. ' +
          'A trap is a bug in the backend or an extension: please report the statement.',
      )
      try {
        if (_errstart(ELEVEL_ERROR, 0)) {
          _errcode(makeSqlState('XX000'))
          _errmsg(message, 0) // copies the text into ErrorContext
          _errhint(hint, 0)
        }
      } finally {
        _free(message)
        _free(hint)
      }
      // what errfinish() resets before an ERROR's longjmp
      holdoff.set(0)
      critical.set(0)
      // PGlite's own recovery takes over from here (execProtocolRawSync)
      throw Object.assign(new Error(`pglite-infer: WebAssembly trap: ${e.message}`), {
        status: longjmpStatus,
        cause: e,
      })
    }
  }
  ;(guarded as { trapGuard?: true }).trapGuard = true
  mod._PostgresMainLoopOnce = guarded
  return true
}

/**
 * Marks the portal the trapped Execute message was running as failed, as
 * PortalRun's PG_CATCH would have: otherwise it stays PORTAL_ACTIVE, the
 * abort leaves it alone, and every later statement fails to replace it
 * ("cannot drop active portal"). exec_execute_message pushed an error
 * context whose argument is { portalName, params }, and a portal's name
 * points into its hash entry, followed there by the Portal itself. Each
 * step is checked (the portal's name must point back at that entry and its
 * status must be ACTIVE) before anything is written.
 */
function failTrappedPortal(heap: Uint8Array, top: number, bottom: number): void {
  const words = new Uint32Array(heap.buffer)
  const at = (address: number) =>
    address > 0 && address + 4 <= heap.length && address % 4 === 0
      ? words[address >>> 2]!
      : undefined
  for (let node = top, hops = 0; node && node !== bottom && hops < 64; hops++) {
    const arg = at(node + 8)
    const portalName = arg === undefined ? undefined : at(arg)
    const portal = portalName === undefined ? undefined : at(portalName + NAMEDATALEN)
    if (
      portal !== undefined &&
      at(portal) === portalName &&
      at(portal + PORTAL_STATUS_OFFSET) === PORTAL_ACTIVE
    )
      words[(portal + PORTAL_STATUS_OFFSET) >>> 2] = PORTAL_FAILED
    const previous = at(node)
    if (previous === undefined || previous === node) break
    node = previous
  }
}
