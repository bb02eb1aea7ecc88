import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { repoPath } from '../helpers/paths.js'
import { missingSymbols } from '../../wasm/check-symbols.mjs'

const bundle = repoPath('packages/pglite-infer/bundle/pg_infer.tar.gz')
const vectorBundle = repoPath('packages/pglite-infer/bundle/vector.tar.gz')
const pgliteWasm = repoPath('node_modules/@electric-sql/pglite/dist/pglite.wasm')
const tmp = repoPath('test/.tmp/wasm')

describe('the extension bundle', () => {
  it('has exactly the entries PGlite expects, with no ./ prefix', () => {
    const entries = execFileSync('tar', ['tzf', bundle], { encoding: 'utf8' })
      .split('\n')
      .filter((e) => e && !e.endsWith('/'))
      .sort()
    expect(entries).toEqual([
      'lib/postgresql/pg_infer.so',
      'share/postgresql/extension/pg_infer--0.1.0.sql',
      'share/postgresql/extension/pg_infer.control',
      'share/postgresql/extension/pg_infer_vector--0.1.0.sql',
      'share/postgresql/extension/pg_infer_vector.control',
    ])
  })

  it('holds a WebAssembly side module whose imports pglite.wasm all exports', () => {
    const so = execFileSync('tar', ['xzOf', bundle, 'lib/postgresql/pg_infer.so'])
    expect(so.subarray(0, 4)).toEqual(Buffer.from([0x00, 0x61, 0x73, 0x6d]))
    expect(missingSymbols(so, readFileSync(pgliteWasm))).toEqual([])
  })

  it('holds no EM_JS (JavaScript source PGlite would have to eval under a CSP)', () => {
    const so = execFileSync('tar', ['xzOf', bundle, 'lib/postgresql/pg_infer.so'])
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(so)).map((e) => e.name)
    expect(exports.filter((n) => n.startsWith('__em_js__'))).toEqual([])
    expect(exports.length).toBeGreaterThan(10)
  })

  it('a second build with no change compiles nothing', () => {
    const out = execFileSync('bash', [repoPath('wasm/build.sh')], { encoding: 'utf8' })
    expect(out).toContain("Nothing to be done for 'all'")
    expect(out).not.toContain('emcc.sh')
  })
})

/** pgvector's source tree, as the build uses it (cached: instant after the first build). */
function pgvectorSource(): string {
  return execFileSync('bash', [repoPath('wasm/pgvector.sh')], { encoding: 'utf8' }).trim()
}

describe('the pgvector bundle', () => {
  it('has the control file, the 0.8.0 install script, every upgrade script, the LICENSE and vector.so', () => {
    const entries = execFileSync('tar', ['tzf', vectorBundle], { encoding: 'utf8' })
      .split('\n')
      .filter((e) => e && !e.endsWith('/'))
    expect(entries.filter((e) => e.startsWith('./'))).toEqual([])
    expect(entries).toEqual(
      expect.arrayContaining([
        'lib/postgresql/vector.so',
        'share/doc/pgvector/LICENSE',
        'share/postgresql/extension/vector.control',
        'share/postgresql/extension/vector--0.8.0.sql',
        'share/postgresql/extension/vector--0.1.0--0.1.1.sql',
        'share/postgresql/extension/vector--0.7.4--0.8.0.sql',
      ]),
    )
    const upgrades = entries.filter((e) => /vector--[\d.]+--[\d.]+\.sql$/.test(e))
    const shipped = readdirSync(`${pgvectorSource()}/sql`)
      .filter((f) => /^vector--[\d.]+--[\d.]+\.sql$/.test(f))
      .map((f) => `share/postgresql/extension/${f}`)
    expect(upgrades.sort()).toEqual(shipped.sort())
    expect(upgrades.length).toBeGreaterThan(30)
    expect(entries).toHaveLength(upgrades.length + 4)
    const control = execFileSync(
      'tar',
      ['xzOf', vectorBundle, 'share/postgresql/extension/vector.control'],
      { encoding: 'utf8' },
    )
    expect(control).toContain("default_version = '0.8.0'")
  })

  it('holds a WebAssembly side module whose imports pglite.wasm all exports', () => {
    const so = execFileSync('tar', ['xzOf', vectorBundle, 'lib/postgresql/vector.so'])
    expect(so.subarray(0, 4)).toEqual(Buffer.from([0x00, 0x61, 0x73, 0x6d]))
    expect(missingSymbols(so, readFileSync(pgliteWasm))).toEqual([])
  })

  it('is linked through the symbol check, like pg_infer.so', () => {
    // make -n prints the recipe it would run: link to a .tmp, check, then move
    const pgvectorSrc = pgvectorSource()
    const recipe = execFileSync(
      'make',
      [
        '-n',
        '-B',
        '-f',
        'wasm/Makefile',
        'PG_INCLUDE=/nonexistent',
        `PGVECTOR_SRC=${pgvectorSrc}`,
        `PGLITE_WASM=${pgliteWasm}`,
        'wasm/build/vector/vector.so',
      ],
      { cwd: repoPath(''), encoding: 'utf8' },
    )
      .split('\n')
      .filter((l) => /vector\.so/.test(l))
    const check = recipe.findIndex((l) =>
      l.includes(`node wasm/check-symbols.mjs wasm/build/vector/vector.so.tmp ${pgliteWasm}`),
    )
    expect(check).toBeGreaterThan(0)
    expect(recipe[check - 1]).toMatch(/-sSIDE_MODULE=1 .* -o wasm\/build\/vector\/vector\.so\.tmp$/)
    expect(recipe[check + 1]).toBe('mv wasm/build/vector/vector.so.tmp wasm/build/vector/vector.so')
  })

  it('catches what pgvector needs: pg_popcount64 without the build setting that avoids it', () => {
    // PostgreSQL 18 dropped HAVE_LONG_LONG_INT_64, so stock pgvector calls
    // pg_popcount64, which pglite.wasm does not export; wasm/Makefile defines it.
    const pgvectorSrc = pgvectorSource()
    const [pgVersion] = execFileSync('node', [repoPath('wasm/pglite-version.mjs')], {
      encoding: 'utf8',
    })
      .trim()
      .split(' ')
    const include = execFileSync('bash', [repoPath('wasm/pg-headers.sh'), pgVersion!], {
      encoding: 'utf8',
    }).trim()
    mkdirSync(tmp, { recursive: true })
    const emcc = (...args: string[]) => execFileSync('bash', [repoPath('wasm/emcc.sh'), ...args])
    emcc(
      '-O2',
      '-fPIC',
      '-msimd128',
      '-D__PGLITE__',
      '-DDISABLE_DISPATCH',
      `-I${include}`,
      `-I${pgvectorSrc}/src`,
      '-c',
      `${pgvectorSrc}/src/bitutils.c`,
      '-o',
      `${tmp}/bitutils.o`,
    )
    emcc(
      '-O2',
      '-fPIC',
      '-sSIDE_MODULE=1',
      '-sWASM_BIGINT=1',
      `${tmp}/bitutils.o`,
      '-o',
      `${tmp}/bitutils.so`,
    )
    expect(missingSymbols(readFileSync(`${tmp}/bitutils.so`), readFileSync(pgliteWasm))).toEqual([
      'env.pg_popcount64 (function)',
    ])
  })
})

describe('the symbol check', () => {
  it('fails the build for a module that calls a symbol PGlite does not export, naming it', () => {
    mkdirSync(tmp, { recursive: true })
    writeFileSync(
      `${tmp}/missing.c`,
      [
        'extern int pgi_not_exported_anywhere(int);',
        'extern void *palloc(unsigned long);',
        'int uses_it(int x) { return pgi_not_exported_anywhere(x) + (palloc(4) != 0); }',
      ].join('\n'),
    )
    execFileSync('bash', [
      repoPath('wasm/emcc.sh'),
      '-O2',
      '-fPIC',
      '-sSIDE_MODULE=1',
      '-sWASM_BIGINT=1',
      `${tmp}/missing.c`,
      '-o',
      `${tmp}/missing.so`,
    ])
    const module = readFileSync(`${tmp}/missing.so`)
    expect(missingSymbols(module, readFileSync(pgliteWasm))).toEqual([
      'env.pgi_not_exported_anywhere (function)',
    ])
    const run = spawnSync(
      'node',
      [repoPath('wasm/check-symbols.mjs'), `${tmp}/missing.so`, pgliteWasm],
      {
        encoding: 'utf8',
      },
    )
    expect(run.status).toBe(1)
    expect(run.stderr).toContain('env.pgi_not_exported_anywhere (function)')
  })
})
