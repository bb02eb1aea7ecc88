/**
 * Tokenizer regexes run on text SQL callers send, inside a SQL call that
 * nothing can interrupt (PGlite has no signals), and JavaScript's regex
 * engine backtracks. A pattern such as `(a+)+b` takes exponential time on
 * "aaaa...c". This check refuses the shapes that backtrack exponentially: a
 * group repeated without bound (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that
 * itself contains a repetition or an alternation, and backreferences. The
 * pre-tokenizer patterns of GPT-2, Llama 3, Qwen 2 and Gemma pass it.
 */
export function unsafeRegexReason(pattern: string): string | undefined {
  if (pattern.length > 2000) return 'the pattern is longer than 2000 characters'
  // per open group: does it contain a repetition or an alternation?
  const stack: { risky: boolean }[] = []
  let lastGroupRisky = false
  let afterGroup = false
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    const wasAfterGroup = afterGroup
    afterGroup = false
    if (c === '\\') {
      const n = pattern[i + 1] ?? ''
      if (/[1-9]/.test(n) || n === 'k') return 'the pattern uses a backreference'
      i++
      continue
    }
    if (c === '[') {
      // skip a character class (it repeats nothing by itself)
      i++
      if (pattern[i] === '^') i++
      if (pattern[i] === ']') i++
      while (i < pattern.length && pattern[i] !== ']') {
        if (pattern[i] === '\\') i++
        i++
      }
      continue
    }
    if (c === '(') {
      stack.push({ risky: false })
      continue
    }
    if (c === ')') {
      const group = stack.pop()
      if (!group) return 'the pattern has an unbalanced ")"'
      lastGroupRisky = group.risky
      afterGroup = true
      continue
    }
    if (c === '|') {
      if (stack.length) stack[stack.length - 1]!.risky = true
      continue
    }
    const unbounded = repetition(pattern, i)
    if (unbounded !== undefined) {
      if (wasAfterGroup && lastGroupRisky && unbounded)
        return 'a repeated group contains a repetition or an alternation (exponential backtracking)'
      for (const g of stack) g.risky = true
      continue
    }
  }
  return undefined
}

/** At a quantifier: whether it repeats without a small bound; else undefined. */
function repetition(p: string, i: number): boolean | undefined {
  const c = p[i]
  if (c === '*' || c === '+') return true
  if (c === '?') return p[i - 1] === '*' || p[i - 1] === '+' || p[i - 1] === '}' ? undefined : false
  if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i))
    if (!m) return undefined
    if (m[2] === undefined) return Number(m[1]) > 1
    return m[3] === '' || Number(m[3]) > 1
  }
  return undefined
}

/** Every regex a tokenizer.json holds ({"Regex": "..."} anywhere in it). */
export function tokenizerRegexes(spec: unknown): string[] {
  const out: string[] = []
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'Regex' && typeof x === 'string') out.push(x)
        else if (k !== 'vocab' && k !== 'merges') walk(x)
      }
  }
  walk(spec)
  return out
}

/** The first regex of a tokenizer.json that could backtrack without bound, and why. */
export function unsafeTokenizerRegex(
  spec: unknown,
): { pattern: string; reason: string } | undefined {
  for (const pattern of tokenizerRegexes(spec)) {
    const reason = unsafeRegexReason(pattern)
    if (reason) return { pattern, reason }
  }
  return undefined
}
