/**
 * The fuzzer's parent: builds the base vindexes, hands case indexes to child
 * processes (worker.ts, one PGlite each), bounds every case in time, restarts
 * a child after a hang or a crash, and classifies each case.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { buildBases, type Base } from './bases.js'
import { describeCase, makeCase } from './mutate.js'
import type { WorkerResult } from './worker.js'

export const OUTCOMES = [
  'rejected',
  'loaded-same',
  'loaded-query-error',
  'loaded-different-plausible',
  'silent-corruption',
  'escape-accepted',
  'unclean-error',
  'unhealthy-session',
  'rejected-valid',
  'nondeterministic',
  'hang',
  'crash',
] as const
export type Outcome = (typeof OUTCOMES)[number]

/** Outcomes that are defects: every one from silent-corruption on. */
export const FINDINGS: ReadonlySet<Outcome> = new Set(
  OUTCOMES.slice(OUTCOMES.indexOf('silent-corruption')),
)

export const OUTCOME_HELP: Record<Outcome, string> = {
  rejected: 'load refused with a clean SQLSTATE error',
  'loaded-same': 'loaded; every answer equals the unmutated vindex',
  'loaded-query-error': 'loaded; some queries failed cleanly, the rest answered the same',
  'loaded-different-plausible': 'loaded; different answers from a possibly valid edit',
  'silent-corruption': 'loaded a corrupt vindex and answered differently without an error',
  'escape-accepted': 'loaded with a file outside its directory (.., absolute, symlink)',
  'unclean-error': 'an error with no SQLSTATE, 38000/XX000, or JavaScript internals',
  'unhealthy-session': 'after the case: select 1, a base model or the loaded set changed',
  'rejected-valid': 'a neutral edit (same meaning) was refused',
  nondeterministic: 'a neutral edit answered differently',
  hang: 'the case ran past the per-case time bound (child killed)',
  crash: 'the child died or WebAssembly aborted',
}

export interface FuzzOptions {
  seed: number
  /** Cases first .. first + cases - 1 (ignored with only). */
  cases: number
  first?: number
  /** Run exactly these case indexes. */
  only?: number[]
  /** Stop handing out cases after this many seconds. */
  timeLimitS?: number
  /** Per-case bound (default 20 s). */
  caseTimeoutS?: number
  /** Child processes (default 1). */
  workers?: number
  /** Restart a child after this many cases (bounds host-side leaks; default 400). */
  recycle?: number
  log?: (line: string) => void
}

export interface CaseReport {
  index: number
  outcome: Outcome
  description: string
  detail: string
  ms: number
}

export interface FuzzReport {
  seed: number
  planned: number
  run: number
  seconds: number
  counts: Record<Outcome, number>
  cases: CaseReport[]
  findings: CaseReport[]
  workerStarts: number
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
const REPO = fileURLToPath(new URL('../..', import.meta.url))

type Reply =
  | { type: 'step'; what: string }
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'done'; result: WorkerResult }

class Child {
  readonly proc: ChildProcess
  private tail = ''
  private waiting:
    ((r: Exclude<Reply, { type: 'step' }> | { type: 'exit'; why: string }) => void) | undefined
  exited: string | undefined
  count = 0
  /** The statement the child said it was running last. */
  lastStep = ''
  constructor() {
    this.proc = fork(WORKER, [], {
      cwd: REPO,
      execArgv: ['--import', 'tsx'],
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    const keep = (d: Buffer) => (this.tail = (this.tail + d.toString()).slice(-4000))
    this.proc.stdout!.on('data', keep)
    this.proc.stderr!.on('data', keep)
    this.proc.on('message', (m: Reply) => {
      if (m.type === 'step') this.lastStep = m.what
      else this.waiting?.(m)
    })
    this.proc.on('exit', (code, signal) => {
      this.exited = `exit code ${code}, signal ${signal}; output tail: ${this.tail.slice(-600).trim()}`
      this.waiting?.({ type: 'exit', why: this.exited })
    })
  }
  /** Sends msg and waits for the reply, the child's death, or the timeout. */
  ask(
    msg: object,
    timeoutMs: number,
  ): Promise<Reply | { type: 'exit'; why: string } | { type: 'timeout' }> {
    return new Promise((resolve) => {
      if (this.exited) return resolve({ type: 'exit', why: this.exited })
      const timer = setTimeout(() => {
        this.waiting = undefined
        resolve({ type: 'timeout' })
      }, timeoutMs)
      this.waiting = (r) => {
        clearTimeout(timer)
        this.waiting = undefined
        resolve(r)
      }
      this.proc.send(msg)
    })
  }
  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL')
  }
  async close(): Promise<void> {
    if (this.exited) return
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()))
    this.proc.send({ type: 'exit' })
    const t = setTimeout(() => this.kill(), 10_000)
    await gone
    clearTimeout(t)
  }
}

export function classify(
  neutral: boolean,
  corrupt: boolean,
  mustReject: boolean,
  r: WorkerResult,
): [Outcome, string] {
  if (r.aborted) return ['crash', r.aborted]
  if (r.unclean.length) return ['unclean-error', r.unclean.join(' | ')]
  if (r.unhealthy.length) return ['unhealthy-session', r.unhealthy.join(' | ')]
  if (!r.load.ok) {
    const e = `${r.load.error.code} ${r.load.error.message}`
    return neutral ? ['rejected-valid', e] : ['rejected', e]
  }
  if (mustReject)
    return [
      'escape-accepted',
      r.differs.length ? `answers differ: ${r.differs.join(',')}` : 'answers the same',
    ]
  if (r.differs.length) {
    const d = `differs: ${r.differs.join(',')}${r.errored.length ? `; errors: ${r.errored.join(' | ')}` : ''}`
    if (neutral) return ['nondeterministic', d]
    return corrupt ? ['silent-corruption', d] : ['loaded-different-plausible', d]
  }
  if (r.errored.length) return ['loaded-query-error', r.errored.join(' | ')]
  return ['loaded-same', '']
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => {})
  const t0 = Date.now()
  const bases: Base[] = await buildBases()
  log(
    `bases: ${bases.map((b) => `${b.name} (${b.level}, ${[...b.files.values()].reduce((a, f) => a + f.byteLength, 0)} bytes)`).join(', ')}`,
  )
  const first = opts.first ?? 0
  const indexes = opts.only ?? Array.from({ length: opts.cases }, (_, i) => first + i)
  const caseTimeoutMs = (opts.caseTimeoutS ?? 20) * 1000
  const deadline = opts.timeLimitS ? t0 + opts.timeLimitS * 1000 : Infinity
  const recycle = opts.recycle ?? 400
  const cases: CaseReport[] = []
  let next = 0
  let workerStarts = 0

  async function start(): Promise<Child> {
    for (let attempt = 0; ; attempt++) {
      const c = new Child()
      workerStarts++
      const r = await c.ask({ type: 'init', seed: opts.seed, bases }, 300_000)
      if (r.type === 'ready') return c
      c.kill()
      const why = r.type === 'fatal' ? r.message : r.type === 'exit' ? r.why : 'timed out'
      if (attempt >= 2) throw new Error(`the fuzz worker does not start: ${why}`)
      log(`worker start failed (${why}); retrying`)
    }
  }

  async function slot(): Promise<void> {
    let child: Child | undefined
    try {
      while (next < indexes.length && Date.now() < deadline) {
        child ??= await start()
        const index = indexes[next++]!
        const k = makeCase(opts.seed, index, bases)
        const description = describeCase(k)
        const t = Date.now()
        child.lastStep = ''
        const r = await child.ask({ type: 'case', index }, caseTimeoutMs)
        let outcome: Outcome
        let detail: string
        let restart = false
        if (r.type === 'done') {
          ;[outcome, detail] = classify(
            k.severity === 'neutral',
            k.severity === 'corrupt',
            k.mustReject,
            r.result,
          )
          restart = !!r.result.aborted || outcome === 'unhealthy-session'
        } else if (r.type === 'timeout') {
          outcome = 'hang'
          detail = `no answer within ${caseTimeoutMs / 1000} s; running: ${child.lastStep}`
          restart = true
        } else {
          outcome = 'crash'
          detail = `${r.type === 'exit' ? r.why : r.type === 'fatal' ? r.message : 'unexpected reply'}; running: ${child.lastStep}`
          restart = true
        }
        const rep = { index, outcome, description, detail, ms: Date.now() - t }
        cases.push(rep)
        if (FINDINGS.has(outcome))
          log(`#${index} ${outcome}: ${description} -- ${detail.slice(0, 300)}`)
        if (cases.length % 100 === 0)
          log(`${cases.length} cases, ${((Date.now() - t0) / 1000).toFixed(0)} s`)
        if (restart) {
          child.kill()
          child = undefined
        } else if (++child.count >= recycle) {
          await child.close()
          child = undefined
        }
      }
    } finally {
      if (child) await child.close()
    }
  }

  await Promise.all(Array.from({ length: Math.max(1, opts.workers ?? 1) }, () => slot()))
  cases.sort((a, b) => a.index - b.index)
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>
  for (const c of cases) counts[c.outcome]++
  return {
    seed: opts.seed,
    planned: indexes.length,
    run: cases.length,
    seconds: (Date.now() - t0) / 1000,
    counts,
    cases,
    findings: cases.filter((c) => FINDINGS.has(c.outcome)),
    workerStarts,
  }
}

/** A finding's class: its outcome and its mutations with the numbers taken out. */
export function findingClass(c: CaseReport): string {
  const muts = c.description.replace(/^base=(\w+?)_\w+ /, '$1 ').replace(/\d+/g, 'N')
  return `${c.outcome} | ${muts}`
}

export function formatReport(r: FuzzReport): string {
  const lines: string[] = []
  lines.push(
    `seed ${r.seed}: ${r.run} of ${r.planned} cases in ${r.seconds.toFixed(1)} s (${r.workerStarts} worker starts)`,
  )
  lines.push('')
  lines.push('| outcome | cases | finding | meaning |')
  lines.push('|---|---:|---|---|')
  for (const o of OUTCOMES)
    lines.push(`| ${o} | ${r.counts[o]} | ${FINDINGS.has(o) ? 'yes' : ''} | ${OUTCOME_HELP[o]} |`)
  if (r.findings.length) {
    lines.push('')
    lines.push(
      `findings (${r.findings.length}); reproduce one with npm run fuzz -- --seed ${r.seed} --case <index>:`,
    )
    for (const c of r.findings)
      lines.push(`  #${c.index} ${c.outcome}: ${c.description} -- ${c.detail.slice(0, 400)}`)
  }
  return lines.join('\n')
}
