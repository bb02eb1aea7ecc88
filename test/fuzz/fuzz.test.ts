// A short seeded run of the vindex fuzzer (test/fuzz/cli.ts runs long ones:
// npm run fuzz -- --cases N --seed S --time-limit-s T). One child process,
// one PGlite in it, 300 cases: mutated vindexes loaded through
// db.infer.createModel or a model index, queried, compared with the
// unmutated vindex, and the session checked after each.
import { describe, expect, it } from 'vitest'
import { FINDINGS, formatReport, runFuzz } from './runner.js'

describe('vindex fuzzer', () => {
  it('300 seeded cases: no crash, no hang, no silently accepted corruption, clean errors, a healthy session', async () => {
    const report = await runFuzz({ seed: 16, cases: 300, workers: 1, caseTimeoutS: 20 })
    const summary = formatReport(report)
    if (report.findings.length) console.log(summary)
    expect(report.run).toBe(300)
    const findings = Object.fromEntries([...FINDINGS].map((o) => [o, report.counts[o]]))
    expect(findings, summary).toEqual(Object.fromEntries([...FINDINGS].map((o) => [o, 0])))
    // the run exercised both ways of loading and both outcomes
    expect(report.counts.rejected).toBeGreaterThan(0)
    expect(report.counts['loaded-same']).toBeGreaterThan(0)
  }, 600_000)
})
