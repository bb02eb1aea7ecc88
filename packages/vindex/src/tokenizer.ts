import { Tokenizer } from '@huggingface/tokenizers'
import { VindexError } from './errors.js'
import { unsafeTokenizerRegex } from './regex-safety.js'

export { Tokenizer }

/**
 * Builds a tokenizer from tokenizer.json (and tokenizer_config.json when
 * present: it carries bos/eos and add_bos_token) with @huggingface/tokenizers.
 */
export function loadTokenizer(
  tokenizerJson: string | Uint8Array | object,
  tokenizerConfig?: string | Uint8Array | object,
): Tokenizer {
  const tj = asJson(tokenizerJson, 'tokenizer.json')
  const tc = tokenizerConfig === undefined ? {} : asJson(tokenizerConfig, 'tokenizer_config.json')
  const unsafe = unsafeTokenizerRegex(tj)
  if (unsafe)
    throw new VindexError('INVALID_INDEX', `a tokenizer regex is refused: ${unsafe.reason}`, {
      file: 'tokenizer.json',
      found: unsafe.pattern.slice(0, 80),
    })
  try {
    return new Tokenizer(tj, tc)
  } catch (e) {
    throw new VindexError('BAD_JSON', `not a usable tokenizer: ${(e as Error).message}`, {
      file: 'tokenizer.json',
    })
  }
}

function asJson(v: string | Uint8Array | object, file: string): object {
  if (typeof v === 'object' && !(v instanceof Uint8Array)) return v
  const text = typeof v === 'string' ? v : new TextDecoder().decode(v)
  try {
    const parsed = JSON.parse(text) as unknown
    if (parsed && typeof parsed === 'object') return parsed
  } catch {
    // typed error below
  }
  throw new VindexError('BAD_JSON', 'not valid JSON', { file })
}
