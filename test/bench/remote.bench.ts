/**
 * Remote models benchmark (docs/remote-models.md): the 6-layer test fixture
 * served by `pglite-infer serve` (a child process, loopback TCP) against the
 * same vindex registered locally.
 *
 *   npx tsx test/bench/remote.bench.ts [--calls N] [--requests N] [--clients N]
 *
 * Prints Markdown tables:
 *   1. latency and calls/s of walk / describe / infer / similar_to from SQL,
 *      local vs remote (sequential, one database), with the ratio;
 *   2. the server's own throughput over HTTP with 8 concurrent clients;
 *   3. deadline -> error latency of statement_timeout during a remote call
 *      (a server that never answers), as a distribution;
 *   4. memory: N databases each holding the model locally vs N databases
 *      using the one server (this process's RSS, and the server's);
 *   5. the server's RSS over --requests HTTP requests (default 10000).
 * Always exits 0 when it ran; figures are reported, not enforced.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { PGlite } from '@electric-sql/pglite'
import { testPgInfer } from '../helpers/db.js'
import { repoPath } from '../helpers/paths.js'
import { fixtureVindex, scratchDir } from '../helpers/vindex.js'
import { QWEN05B_SHAPE, writeSyntheticVindex } from './synthetic-vindex.js'

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '100' },
    requests: { type: 'string', default: '10000' },
    clients: { type: 'string', default: '4' },
    sections: { type: 'string', default: '1,2,3,4,5' },
    // table 4 on a larger synthetic vindex (8 layers of Qwen2.5-0.5B's width, browse level)
    synthetic: { type: 'boolean', default: false },
  },
})
const SECTIONS = new Set(values.sections!.split(',').map(Number))
const section = (n: number) => SECTIONS.has(n)
const CALLS = Number(values.calls)
const REQUESTS = Number(values.requests)
const CLIENTS = Number(values.clients)

interface Child {
  url: string
  child: ChildProcess
}

function start(args: string[]): Promise<Child> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((ok, fail) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += String(d)
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line && out.includes('\n')) ok({ url: JSON.parse(line).listening, child })
    })
    child.once('exit', (c) => fail(new Error(`exited ${c}`)))
  })
}

async function openWith(): Promise<PGlite> {
  const db = await PGlite.create({ extensions: { infer: testPgInfer() } })
  await db.exec('CREATE EXTENSION pg_infer')
  return db
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
const mb = (b: number) => (b / 2 ** 20).toFixed(1)
const f = (x: number, d = 2) => x.toFixed(d)

async function timeCalls(db: PGlite, sql: string, n: number): Promise<number[]> {
  for (let i = 0; i < 5; i++) await db.query(sql) // warm-up
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await db.query(sql)
    out.push(performance.now() - t0)
  }
  return out
}

async function serverStats(url: string) {
  return (await (await fetch(`${url}/v1/pglite/server`)).json()) as {
    rss_bytes: number
    requests: number
  }
}

async function main() {
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}, node ${process.version}\n`,
  )
  const vindex = await fixtureVindex('f16', 'inference')
  const CLI = repoPath('packages/cli/dist/main.js')
  const server = await start([
    CLI,
    'serve',
    `qwen=${vindex}`,
    '--port',
    '0',
    '--level',
    'inference',
  ])
  const children: ChildProcess[] = [server.child]
  try {
    // ---- 1. SQL latency, local vs remote
    if (section(1)) {
      const db = await openWith()
      await db.query("select infer_create_model('loc', $1, 'inference')", [vindex])
      await db.query('select infer_create_model_remote($1, $2)', ['rem', server.url + '#qwen'])
      const calls: [string, string][] = [
        ['walk(prompt, 10)', "select * from walk('The capital of France is', 10, %M)"],
        ['describe(entity)', "select * from describe('France', %M)"],
        ['infer(prompt, 5)', "select * from infer('The capital of France is', 5, %M)"],
        ['similar_to(a, b)', "select similar_to('France', 'Germany', %M)"],
      ]
      console.log(`### 1. One database, ${CALLS} sequential calls each (ms)\n`)
      console.log(
        '| call | local median | local p95 | remote median | remote p95 | local calls/s | remote calls/s | remote / local |',
      )
      console.log('|---|---|---|---|---|---|---|---|')
      for (const [name, sql] of calls) {
        const l = await timeCalls(db, sql.replaceAll('%M', "'loc'"), CALLS)
        const r = await timeCalls(db, sql.replaceAll('%M', "'rem'"), CALLS)
        const lm = pct(l, 50)
        const rm = pct(r, 50)
        console.log(
          `| ${name} | ${f(lm)} | ${f(pct(l, 95))} | ${f(rm)} | ${f(pct(r, 95))} | ${f(1000 / lm, 0)} | ${f(1000 / rm, 0)} | ${f(rm / lm)}x |`,
        )
      }
      await db.close()
    }

    // ---- 2. the server's HTTP throughput, 8 concurrent clients
    if (section(2)) {
      console.log('\n### 2. The server over HTTP, 8 concurrent keep-alive clients, 2 s each\n')
      console.log('| endpoint | requests/s | median ms | p95 ms |')
      console.log('|---|---|---|---|')
      for (const [name, path, body] of [
        ['GET /v1/walk', '/v1/walk?prompt=Paris&top=10', undefined],
        ['GET /v1/describe', '/v1/describe?entity=France', undefined],
        [
          'POST /v1/infer',
          '/v1/infer',
          JSON.stringify({ prompt: 'The capital of France is', top: 5 }),
        ],
      ] as const) {
        const lat: number[] = []
        const until = performance.now() + 2000
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (performance.now() < until) {
              const t0 = performance.now()
              const r = await fetch(server.url + path, body ? { method: 'POST', body } : {})
              await r.arrayBuffer()
              lat.push(performance.now() - t0)
            }
          }),
        )
        console.log(
          `| ${name} | ${f(lat.length / 2, 0)} | ${f(pct(lat, 50))} | ${f(pct(lat, 95))} |`,
        )
      }
    }

    // ---- 3. statement_timeout during a remote call: deadline -> error
    if (section(3)) {
      const slow = await start([repoPath('test/helpers/fake-model-server.mjs'), 'slow'])
      children.push(slow.child)
      const c = await openWith()
      await c.query('select infer_create_model_remote($1, $2)', ['slow', slow.url])
      await c.exec('set infer.remote_retries = 0')
      const late: number[] = []
      for (let i = 0; i < 30; i++) {
        const timeout = 50 + (i % 5) * 25
        await c.exec(`set statement_timeout = ${timeout}`)
        const t0 = performance.now()
        try {
          await c.query("select similar_to('a', 'b', 'slow')")
        } catch {
          // 57014
        }
        late.push(performance.now() - t0 - timeout)
        await c.exec('reset statement_timeout')
      }
      await c.close()
      console.log(
        '\n### 3. statement_timeout during a remote call: ms from the deadline to the error (30 calls, timeouts 50-150 ms)\n',
      )
      console.log('| min | p50 | p90 | p99 | max |')
      console.log('|---|---|---|---|---|')
      console.log(
        `| ${f(Math.min(...late))} | ${f(pct(late, 50))} | ${f(pct(late, 90))} | ${f(pct(late, 99))} | ${f(Math.max(...late))} |`,
      )
    }

    // ---- 4. memory: N databases, local copies vs one server; each case in
    // a fresh process (freed WebAssembly memory is not returned to the OS,
    // so cases measured one after the other in one process would share it)
    if (section(4)) {
      let model = {
        vindex,
        url: server.url + '#qwen',
        level: 'inference',
        what: 'the 6-layer fixture',
      }
      if (values.synthetic) {
        const dir = join(scratchDir('remote-bench-synthetic'), 'synthetic.vindex')
        const gen = await writeSyntheticVindex(dir, {
          shape: { ...QWEN05B_SHAPE, layers: 8, vocab: 32000 },
        })
        const big = await start([CLI, 'serve', `big=${dir}`, '--port', '0'])
        children.push(big.child)
        model = {
          vindex: dir,
          url: big.url + '#big',
          level: 'browse',
          what: `a synthetic vindex of ${mb(gen.bytes)} MiB (8 x 4864 x 896 gates, 32000 x 896 embeddings)`,
        }
      }
      const serverUrl = model.url.replace(/#.*$/, '')
      const script = join(scratchDir('remote-bench'), 'clients.mjs')
      writeFileSync(
        script,
        `
        import { PGlite } from '@electric-sql/pglite'
        import { createPgInfer } from 'pglite-infer'
        const [mode, n, vindex, url, level] = process.argv.slice(2)
        const infer = createPgInfer({ allowedHostDirectories: [${JSON.stringify(repoPath(''))}] })
        const dbs = []
        for (let i = 0; i < Number(n); i++) {
          const d = await PGlite.create({ extensions: { infer } })
          await d.exec('CREATE EXTENSION pg_infer')
          if (mode !== 'none') {
            if (mode === 'remote') await d.query('select infer_create_model_remote($1, $2)', ['m', url])
            else await d.query("select infer_create_model('m', $1, $2)", [vindex, level])
            await d.query("select * from walk('Paris', 10, 'm')")
            await d.query("select * from describe('France', 'm')")
            if (level === 'inference') await d.query("select * from infer('The capital of France is', 5, 'm')")
          }
          dbs.push(d)
        }
        process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss }) + '\\n')
        for (const d of dbs) await d.close()`,
      )
      const run = (mode: string) =>
        new Promise<number>((ok, fail) => {
          const ch = spawn(
            process.execPath,
            [script, mode, String(CLIENTS), model.vindex, model.url, model.level],
            { stdio: ['ignore', 'pipe', 'inherit'] },
          )
          let out = ''
          ch.stdout!.on('data', (d) => (out += String(d)))
          ch.once('exit', (c) => (c === 0 ? ok(JSON.parse(out).rss) : fail(new Error(`exit ${c}`))))
        })
      const none = await run('none')
      const local = await run('local')
      const sBefore = (await serverStats(serverUrl)).rss_bytes
      const remote = await run('remote')
      const sAfter = (await serverStats(serverUrl)).rss_bytes
      console.log(
        `\n### 4. Memory: one process with ${CLIENTS} databases that each queried ${model.what} (MiB of RSS)\n`,
      )
      console.log('| | process RSS | over no model | the server |')
      console.log('|---|---|---|---|')
      console.log(`| no model (PGlite + pg_infer) | ${mb(none)} | - | - |`)
      console.log(`| local (a copy each) | ${mb(local)} | ${mb(local - none)} | - |`)
      console.log(
        `| remote (one server) | ${mb(remote)} | ${mb(remote - none)} | ${mb(sAfter)} (grew ${mb(sAfter - sBefore)} for these ${CLIENTS} clients) |`,
      )
    }

    // ---- 5. server RSS over REQUESTS requests
    if (section(5)) {
      console.log(`\n### 5. Server RSS over ${REQUESTS} HTTP requests (8 concurrent clients)\n`)
      console.log('| requests | server RSS MiB |')
      console.log('|---|---|')
      const first = await serverStats(server.url)
      console.log(`| 0 | ${mb(first.rss_bytes)} |`)
      let sent = 0
      const step = Math.max(1, Math.floor(REQUESTS / 5))
      let next = step
      const paths = [
        '/v1/walk?prompt=Paris&top=10',
        '/v1/describe?entity=France',
        '/v1/walk?prompt=The%20capital%20of%20Germany&top=5',
      ]
      const t0 = performance.now()
      while (sent < REQUESTS) {
        const batch = Math.min(step, REQUESTS - sent)
        let k = 0
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (k < batch) {
              const i = k++
              const r = await fetch(server.url + paths[(sent + i) % paths.length])
              await r.arrayBuffer()
            }
          }),
        )
        sent += batch
        if (sent >= next) {
          console.log(`| ${sent} | ${mb((await serverStats(server.url)).rss_bytes)} |`)
          next += step
        }
      }
      const s = (performance.now() - t0) / 1000
      console.log(`\n${REQUESTS} requests in ${f(s, 1)} s (${f(REQUESTS / s, 0)} requests/s).`)
    }
  } finally {
    for (const ch of children) ch.kill('SIGTERM')
  }
}

await main()
