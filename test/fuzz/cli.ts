/**
 * npm run fuzz -- --cases N --seed S [--time-limit-s T] [--first I] [--case I[,J...]]
 *                 [--workers W] [--case-timeout-s T] [--json FILE]
 *
 * Mutates vindexes (test/fuzz/mutate.ts), loads each through db.infer.createModel
 * or a model index, queries it, and checks: no crash, no hang, no answer from a
 * corrupt vindex without an error, clean errors, a healthy session after each
 * case. Exit code 1 when anything was found.
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { formatReport, runFuzz } from './runner.js'

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`)
    const [k, v] = a.includes('=') ? a.slice(2).split(/=(.*)/s) : [a.slice(2), argv[++i]]
    if (v === undefined) throw new Error(`--${k} needs a value`)
    out[k!] = v
  }
  return out
}

const args = parse(process.argv.slice(2))
const known = [
  'cases',
  'seed',
  'time-limit-s',
  'first',
  'case',
  'workers',
  'case-timeout-s',
  'json',
  'recycle',
]
for (const k of Object.keys(args))
  if (!known.includes(k)) throw new Error(`unknown option --${k} (known: ${known.join(', ')})`)
const num = (k: string, d: number): number => {
  const v = args[k] === undefined ? d : Number(args[k])
  if (!Number.isFinite(v)) throw new Error(`--${k} must be a number`)
  return v
}

const report = await runFuzz({
  seed: num('seed', 1),
  cases: num('cases', 300),
  first: num('first', 0),
  only: args.case ? args.case.split(',').map(Number) : undefined,
  timeLimitS: args['time-limit-s'] ? num('time-limit-s', 0) : undefined,
  caseTimeoutS: num('case-timeout-s', 20),
  workers: num('workers', Math.max(1, Math.min(4, Math.floor(cpus().length / 2)))),
  recycle: num('recycle', 400),
  log: (l) => console.error(l),
})
console.log(formatReport(report))
if (args.json) writeFileSync(args.json, JSON.stringify(report, null, 2))
process.exit(report.findings.length ? 1 : 0)
