import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { repoPath } from '../helpers/paths.js'
import { missingSymbols } from '../../wasm/check-symbols.mjs'

const bundle = repoPath('packages/pglite-infer/bundle/pg_infer.tar.gz')
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

  it('a second build with no change compiles nothing', () => {
    const out = execFileSync('bash', [repoPath('wasm/build.sh')], { encoding: 'utf8' })
    expect(out).toContain("Nothing to be done for 'all'")
    expect(out).not.toContain('emcc.sh')
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
