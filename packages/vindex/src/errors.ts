/**
 * Every defect the vindex package can detect is a VindexError with a stable
 * `code`, the file it concerns, and (where it makes sense) what was expected
 * and what was found. Callers switch on `code`; people read `message`.
 */
export type VindexErrorCode =
  | 'MISSING_FILE'
  | 'TRUNCATED'
  | 'SIZE_MISMATCH'
  | 'BAD_MAGIC'
  | 'UNKNOWN_DTYPE'
  | 'DIMENSION_MISMATCH'
  | 'BAD_JSON'
  | 'INVALID_INDEX'
  | 'CHECKSUM_MISMATCH'
  | 'UNSUPPORTED_VERSION'
  | 'UNSUPPORTED_ARCHITECTURE'
  | 'MISSING_TENSOR'
  | 'BAD_SAFETENSORS'
  | 'INVALID_ARGUMENT'
  | 'FETCH_FAILED'

export interface VindexErrorDetails {
  /** File (relative name inside the vindex or checkpoint) the defect concerns. */
  file?: string
  expected?: unknown
  found?: unknown
  /** A one-line hint on how to fix it, shown by the CLI. */
  hint?: string
}

export class VindexError extends Error {
  readonly code: VindexErrorCode
  readonly file: string | undefined
  readonly expected: unknown
  readonly found: unknown
  readonly hint: string | undefined

  constructor(code: VindexErrorCode, message: string, details: VindexErrorDetails = {}) {
    super(composeMessage(message, details))
    this.name = 'VindexError'
    this.code = code
    this.file = details.file
    this.expected = details.expected
    this.found = details.found
    this.hint = details.hint
  }
}

/** "<file>: <what> (expected X, found Y)" so one line says everything. */
function composeMessage(message: string, d: VindexErrorDetails): string {
  const prefix = d.file !== undefined ? `${d.file}: ` : ''
  const hasExpectation = d.expected !== undefined || d.found !== undefined
  const parts: string[] = []
  if (d.expected !== undefined) parts.push(`expected ${show(d.expected)}`)
  if (hasExpectation) parts.push(`found ${d.found === undefined ? 'nothing' : show(d.found)}`)
  const expectation = hasExpectation ? ` (${parts.join(', ')})` : ''
  return `${prefix}${message}${expectation}`
}

function show(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' && Number.isInteger(v) && v > 0xffff && v <= 0xffffffff) {
    return `${v} (0x${v.toString(16).toUpperCase()})`
  }
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}

export function isVindexError(e: unknown, code?: VindexErrorCode): e is VindexError {
  return e instanceof VindexError && (code === undefined || e.code === code)
}
