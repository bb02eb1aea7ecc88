import { spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FIXTURES } from './tiny-checkpoints.js'

const CLI = join(import.meta.dirname, '..', '..', 'packages', 'cli', 'dist', 'main.js')
const MODEL = join(FIXTURES, 'knowledge-qwen2-6l')
const out = mkdtempSync(join(tmpdir(), 'cli-test-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

// 6 layers x 1024 features x 256 hidden x 2 bytes (f16); 2595 x 256 x 2;
// 16-byte header + 6 x (4 + 1024 x (8 + 10 x 8)).
const GATE_F16 = 3_145_728
const EMBED_F16 = 1_328_640
const DOWN_META = 540_712

describe('pglite-infer CLI on knowledge-qwen2-6l', () => {
  const browse = join(out, 'browse.vindex')
  const inference = join(out, 'inference.vindex')

  it('extracts at browse level and prints a summary', () => {
    const r = cli('extract', MODEL, '-o', browse, '--level', 'browse')
    expect(r.stderr).toContain('gate + down_meta')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('6 layers, hidden 256, vocab 2595')
    expect(r.stdout).toMatch(/gate_vectors\.bin\s+3145728 bytes/)
    expect(statSync(join(browse, 'gate_vectors.bin')).size).toBe(GATE_F16)
    expect(statSync(join(browse, 'embeddings.bin')).size).toBe(EMBED_F16)
    expect(statSync(join(browse, 'down_meta.bin')).size).toBe(DOWN_META)
    const index = JSON.parse(readFileSync(join(browse, 'index.json'), 'utf8'))
    expect(index.extract_level).toBe('browse')
    expect(index.weights).toBeUndefined()
  })

  it('inspect prints dimensions and exact file sizes', () => {
    const r = cli('inspect', browse, '--verify')
    expect(r.status).toBe(0)
    const field = (name: string): string =>
      new RegExp(`^${name}\\s+(.*)$`, 'm').exec(r.stdout)?.[1] ?? ''
    expect(field('layers')).toBe('6')
    expect(field('hidden')).toBe('256')
    expect(field('features')).toBe('1024 per layer')
    expect(field('vocab')).toBe('2595')
    expect(field('dtype')).toBe('f16')
    expect(field('level')).toBe('browse')
    expect(field('checksums')).toBe('verified')
    expect(r.stdout).toMatch(/gate_vectors\.bin\s+3145728 bytes/)
    expect(r.stdout).toMatch(/embeddings\.bin\s+1328640 bytes/)
    expect(r.stdout).toMatch(/down_meta\.bin\s+540712 bytes/)
  })

  it('extracts at inference level with f32 and every forward-pass tensor', () => {
    const r = cli(
      'extract',
      MODEL,
      '-o',
      inference,
      '--level',
      'inference',
      '--dtype',
      'f32',
      '--quiet',
    )
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    const j = JSON.parse(cli('inspect', inference, '--json').stdout)
    expect(j).toMatchObject({
      layers: 6,
      hidden: 256,
      vocab: 2595,
      level: 'inference',
      dtype: 'f32',
    })
    expect(j.files['gate_vectors.bin']).toBe(GATE_F16 * 2)
    // q,k,v,o + 3 biases + up + down + 2 norms per layer, final norm, lm_head.
    expect(j.weights).toBe(6 * 11 + 2)
    expect(j.files['lm_head.bin']).toBe(2595 * 256 * 4)
    expect(j.files['up_weights.bin']).toBe(6 * 1024 * 256 * 4)
  })

  it('reports errors in one line naming the file, exit code 1', () => {
    const r = cli('inspect', join(out, 'nope.vindex'))
    expect(r.status).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain('nope.vindex')
    const e = cli('extract', join(out, 'no-model'), '-o', join(out, 'x.vindex'))
    expect(e.status).toBe(1)
    expect(e.stderr).toMatch(/MISSING_FILE: config\.json: required file is missing; fix: /)
  })

  it('rejects bad flags with usage', () => {
    const r = cli('extract', MODEL, '-o', join(out, 'y'), '--dtype', 'f8')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('--dtype must be one of f16, f32')
  })

  it('refuses an existing non-empty output directory unless --force', () => {
    const dir = join(out, 'occupied')
    mkdirSync(dir)
    writeFileSync(join(dir, 'keep.txt'), 'mine')
    const r = cli('extract', MODEL, '-o', dir, '--layers', '1', '--quiet')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`${dir} exists and is not empty; pass --force to replace it`)
    expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('mine')

    const f = cli('extract', MODEL, '-o', dir, '--layers', '1', '--quiet', '--force')
    expect(f.status).toBe(0)
    expect(existsSync(join(dir, 'keep.txt'))).toBe(false)
    expect(statSync(join(dir, 'index.json')).isFile()).toBe(true)

    const empty = join(out, 'empty')
    mkdirSync(empty)
    expect(cli('extract', MODEL, '-o', empty, '--layers', '1', '--quiet').status).toBe(0)

    const file = join(out, 'a-file')
    writeFileSync(file, 'x')
    const g = cli('extract', MODEL, '-o', file, '--layers', '1', '--quiet')
    expect(g.status).toBe(1)
    expect(g.stderr).toContain('exists and is not a directory')
  })
})

describe('pglite-infer --version and --help', () => {
  const pkg = JSON.parse(
    readFileSync(join(import.meta.dirname, '..', '..', 'packages', 'cli', 'package.json'), 'utf8'),
  )

  it('--version prints the package version', () => {
    for (const flag of ['--version', '-v', 'version']) {
      const r = cli(flag)
      expect(r.status).toBe(0)
      expect(r.stdout).toBe(`${pkg.version}\n`)
    }
  })

  it('--help and -h print the usage of every command', () => {
    for (const args of [
      ['--help'],
      ['-h'],
      ['help'],
      [],
      ['extract', '--help'],
      ['inspect', '-h'],
    ]) {
      const r = cli(...args)
      expect(r.status).toBe(0)
      expect(r.stderr).toBe('')
      for (const c of [
        'extract <hf-model-dir> -o',
        'inspect <vindex>',
        '--force',
        '--version',
        '--help',
      ])
        expect(r.stdout).toContain(c)
    }
  })

  it('an unknown command is an error with the usage', () => {
    const r = cli('frobnicate')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('unknown command "frobnicate"')
    expect(r.stderr).toContain('usage:')
  })
})
