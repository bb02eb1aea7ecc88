/**
 * The packages as users get them: `npm pack` each published package, install
 * the tarballs into a fresh npm project (registry dependencies from the normal
 * registry), and use them from there: ESM import, CommonJS require (Node's
 * require(esm)), `npx pglite-infer`, and TypeScript under `bundler` and
 * `node16` resolution. Needs the build (`npm run build`) and the registry.
 */
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..')
const PACKAGES = ['vindex', 'compute', 'cli', 'pglite-infer']
const VERSION = JSON.parse(
  readFileSync(join(ROOT, 'packages', 'pglite-infer', 'package.json'), 'utf8'),
).version as string
/** The repository's own versions, so the install mostly hits the npm cache. */
const rootVersion = (name: string): string =>
  JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

const work = mkdtempSync(join(tmpdir(), 'pack-test-'))
const tarballs = join(work, 'tarballs')
const app = join(work, 'app')
const env = {
  ...process.env,
  ONNXRUNTIME_NODE_INSTALL: 'skip',
  npm_config_update_notifier: 'false',
}
afterAll(() => rmSync(work, { recursive: true, force: true }))

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: 'pipe' })
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`)
  }
}

/** Every file name in each tarball, by package directory. */
const packed = new Map<string, string[]>()

beforeAll(() => {
  mkdirSync(tarballs)
  const files: string[] = []
  for (const p of PACKAGES) {
    const [info] = JSON.parse(
      run('npm', ['pack', '--json', '--pack-destination', tarballs], join(ROOT, 'packages', p)),
    ) as { filename: string; files: { path: string }[] }[]
    packed.set(
      p,
      info!.files.map((f) => f.path),
    )
    files.push(join(tarballs, info!.filename))
  }
  mkdirSync(app)
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'pack-test-app', private: true, type: 'module' }),
  )
  run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      ...files,
      `@electric-sql/pglite@${rootVersion('@electric-sql/pglite')}`,
      `@types/node@${rootVersion('@types/node')}`,
    ],
    app,
  )
}, 600_000)

const PROGRAM = `
const db = await PGlite.create({ extensions: { pgInfer, vector } })
await db.exec('CREATE EXTENSION pg_infer; CREATE EXTENSION vector')
const { rows } = await db.query('select infer_version() as v')
console.log(JSON.stringify(rows[0].v))
const vec = await db.query("select extversion as v, '[1,2,3]'::vector <-> '[4,6,3]' as d from pg_extension where extname = 'vector'")
console.log(JSON.stringify(vec.rows[0]))
await db.close()
`
/** What PROGRAM prints: pg_infer's version, then pgvector's version and an L2 distance. */
const PROGRAM_OUTPUT = `${JSON.stringify(VERSION)}\n${JSON.stringify({ v: '0.8.0', d: 5 })}`

describe('the packed packages installed into a fresh project', () => {
  it('ship dist, README and LICENSE; no source maps, no demo', () => {
    for (const [p, files] of packed) {
      expect(files, p).toContain('README.md')
      expect(files, p).toContain('LICENSE')
      expect(
        files.filter((f) => f.endsWith('.map')),
        p,
      ).toEqual([])
      expect(
        files.filter((f) => /(^|\/)demo\./.test(f)),
        p,
      ).toEqual([])
      expect(
        files.filter(
          (f) =>
            !/^(dist\/|bundle\/|README\.md$|LICENSE$|THIRD_PARTY_NOTICES\.md$|package\.json$)/.test(
              f,
            ),
        ),
        p,
      ).toEqual([])
    }
    expect(packed.get('pglite-infer')).toContain('bundle/pg_infer.tar.gz')
    expect(packed.get('pglite-infer')).toContain('bundle/vector.tar.gz')
    expect(packed.get('pglite-infer')).toContain('THIRD_PARTY_NOTICES.md')
    expect(packed.get('pglite-infer')).toContain('dist/testing.js')
    expect(packed.get('pglite-infer')).toContain('dist/testing.d.ts')
  })

  it('uses the one PGlite the app installed (a peer dependency)', () => {
    const copies = run('npm', ['ls', '--all', '--parseable', '@electric-sql/pglite'], app)
      .trim()
      .split('\n')
    expect(copies).toEqual([join(app, 'node_modules', '@electric-sql', 'pglite')])
  })

  it('ESM: import { pgInfer } from "pglite-infer" and { vector } from "pglite-infer/vector" create the extensions', () => {
    writeFileSync(
      join(app, 'esm.mjs'),
      `import { PGlite } from '@electric-sql/pglite'\nimport { pgInfer } from 'pglite-infer'\n` +
        `import { vector } from 'pglite-infer/vector'\n${PROGRAM}`,
    )
    expect(run(process.execPath, ['esm.mjs'], app).trim()).toBe(PROGRAM_OUTPUT)
  })

  it('CommonJS: require("pglite-infer") and require("pglite-infer/vector") create the extensions', () => {
    writeFileSync(
      join(app, 'cjs.cjs'),
      `const { PGlite } = require('@electric-sql/pglite')\nconst { pgInfer } = require('pglite-infer')\n` +
        `const { vector } = require('pglite-infer/vector')\n` +
        `;(async () => {${PROGRAM}})().catch((e) => { console.error(e); process.exit(1) })\n`,
    )
    expect(run(process.execPath, ['cjs.cjs'], app).trim()).toBe(PROGRAM_OUTPUT)
  })

  it('ESM: createTestDb from "pglite-infer/testing" restores databases from one snapshot', () => {
    writeFileSync(
      join(app, 'testing.mjs'),
      `import { createTestDb, testDbStats } from 'pglite-infer/testing'
const a = await createTestDb()
const b = await createTestDb()
const { rows } = await b.query('select infer_version() as v')
console.log(JSON.stringify([rows[0].v, testDbStats()]))
await a.close()
await b.close()
`,
    )
    expect(JSON.parse(run(process.execPath, ['testing.mjs'], app))).toEqual([
      VERSION,
      { built: 1, loadedFromDisk: 0, restored: 2 },
    ])
  })

  it('npx pglite-infer --version and --help work with pglite-infer alone', () => {
    expect(run('npx', ['pglite-infer', '--version'], app).trim()).toBe(VERSION)
    expect(run('npx', ['pglite-infer', '--help'], app)).toContain('pglite-infer extract')
  })

  it.each([
    ['bundler', { module: 'preserve', moduleResolution: 'bundler' }, 'use.ts'],
    ['node16', { module: 'node16', moduleResolution: 'node16' }, 'use.mts'],
  ])('TypeScript type-checks an import of pglite-infer under %s', (name, options, file) => {
    const dir = join(app, `ts-${name}`)
    mkdirSync(dir)
    writeFileSync(
      join(dir, file),
      `import { PGlite } from '@electric-sql/pglite'
import { createPgInfer, pgInfer } from 'pglite-infer'
import { vector } from 'pglite-infer/vector'
import { createTestDb, withRollback } from 'pglite-infer/testing'
import type { Extension } from '@electric-sql/pglite'

const ext: Extension = pgInfer
const vectorExt: Extension = vector
export async function open(): Promise<string> {
  const db = await PGlite.create({
    extensions: { infer: createPgInfer({ allowedHostDirectories: ['/models'] }), ext, vector: vectorExt },
  })
  await db.exec('CREATE EXTENSION pg_infer')
  const { rows } = await db.query<{ v: string }>('select infer_version() as v')
  return rows[0]!.v
}
export async function testDb(): Promise<number> {
  const db = await createTestDb({ extensions: { vector }, model: { name: 'm', source: new Uint8Array() } })
  const n = await withRollback(db, async (d) => (await d.infer.models()).length)
  return n
}
`,
    )
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          ...options,
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
        },
        files: [file],
      }),
    )
    expect(existsSync(join(app, 'node_modules', 'pglite-infer', 'dist', 'index.d.ts'))).toBe(true)
    run(process.execPath, [TSC, '-p', 'tsconfig.json'], dir)
  })

  it('a PGlite outside the peer range gets a clear error naming both versions, not a LinkError', () => {
    const peer = JSON.parse(
      readFileSync(join(ROOT, 'packages', 'pglite-infer', 'package.json'), 'utf8'),
    ).peerDependencies['@electric-sql/pglite'] as string
    const old = join(work, 'old-pglite-app')
    mkdirSync(old)
    writeFileSync(
      join(old, 'package.json'),
      JSON.stringify({ name: 'old-pglite-app', private: true, type: 'module' }),
    )
    const files = readdirSync(tarballs).map((f) => join(tarballs, f))
    // PGlite 0.4.6 runs PostgreSQL 17; npm warns about the peer range, as a user would see
    run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--legacy-peer-deps',
        ...files,
        '@electric-sql/pglite@0.4.6',
      ],
      old,
    )
    writeFileSync(
      join(old, 'main.mjs'),
      `import { PGlite } from '@electric-sql/pglite'
import { pgInfer, PGLITE_RANGE } from 'pglite-infer'
console.log(JSON.stringify(PGLITE_RANGE))
try {
  await PGlite.create({ extensions: { pgInfer } })
  console.log('created')
} catch (e) {
  console.log(e.message)
}
// the half-started PGlite 0.4.6 leaves a rejected promise of its own behind
process.exit(0)
`,
    )
    const [range, message] = run(process.execPath, ['main.mjs'], old).trim().split('\n')
    expect(JSON.parse(range!)).toBe(peer)
    expect(message).toBe(
      `pglite-infer: pg_infer is built for PostgreSQL 18, which @electric-sql/pglite ${peer} provides; this PGlite runs PostgreSQL 17.5. Install a PGlite in that range (npm install @electric-sql/pglite@"${peer}").`,
    )
  })
})
