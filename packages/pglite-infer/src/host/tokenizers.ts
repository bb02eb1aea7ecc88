import { Tokenizer } from '@huggingface/tokenizers'
import { unsafeTokenizerRegex } from '@pglite-infer/vindex'
import { HostError } from './types.js'

/**
 * Tokenizers built from tokenizer.json texts, kept so that repeated calls with
 * the same tokenizer do not parse a multi-megabyte JSON each time. Small and
 * least-recently-used: a session rarely uses more than a couple of models.
 */
export class TokenizerCache {
  private readonly entries = new Map<string, Tokenizer>()
  constructor(private readonly capacity = 4) {}

  get(tokenizerJson: string): Tokenizer {
    const hit = this.entries.get(tokenizerJson)
    if (hit) {
      this.entries.delete(tokenizerJson)
      this.entries.set(tokenizerJson, hit)
      return hit
    }
    const tokenizer = parseTokenizer(tokenizerJson)
    this.entries.set(tokenizerJson, tokenizer)
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
    return tokenizer
  }
}

function parseTokenizer(tokenizerJson: string): Tokenizer {
  let spec: unknown
  try {
    spec = JSON.parse(tokenizerJson)
  } catch (e) {
    throw new HostError(
      `tokenizer_json is not valid JSON (${(e as Error).message}); pass the contents of a HuggingFace tokenizer.json`,
      '22023',
    )
  }
  if (typeof spec !== 'object' || spec === null || !('model' in spec)) {
    throw new HostError(
      'tokenizer_json has no "model" section: it is not a HuggingFace tokenizer.json',
      '22023',
    )
  }
  const unsafe = unsafeTokenizerRegex(spec)
  if (unsafe)
    throw new HostError(
      `tokenizer_json has a regex that could run without bound (${unsafe.reason}): ` +
        `${JSON.stringify(unsafe.pattern.slice(0, 80))}`,
      '22023',
    )
  return new Tokenizer(spec, {})
}
