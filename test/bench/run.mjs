// Runs every benchmark script test/bench/*.bench.ts in turn (each prints its
// own table), or says there are none. `npm run bench` builds first.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('.', import.meta.url))
const only = process.argv[2]
const scripts = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => !only || f.includes(only))
  .sort()
if (scripts.length === 0) {
  console.log('no benchmarks yet')
  process.exit(0)
}
let failed = 0
for (const script of scripts) {
  console.log(`\n## ${script}\n`)
  const run = spawnSync('npx', ['tsx', `${dir}${script}`], { stdio: 'inherit' })
  if (run.status !== 0) failed++
}
process.exit(failed ? 1 : 0)
