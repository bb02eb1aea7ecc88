import { extractVindexDir } from '@pglite-infer/vindex/node'
import { mkdtempSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { QWEN_FIXTURE, repoPath } from './paths.js'

/** A fresh scratch directory under test/.tmp (gitignored). */
export function scratchDir(prefix: string): string {
  const root = repoPath('test/.tmp')
  mkdirSync(root, { recursive: true })
  return mkdtempSync(join(root, `${prefix}-`))
}

/**
 * The knowledge-qwen2-6l fixture extracted into a vindex (a few seconds),
 * once per test file and dtype.
 */
const extracted = new Map<string, Promise<string>>()
export function fixtureVindex(
  dtype: 'f16' | 'f32' = 'f16',
  level: 'browse' | 'inference' = 'browse',
): Promise<string> {
  const key = `${dtype}-${level}`
  let p = extracted.get(key)
  if (!p) {
    const out = join(scratchDir(`qwen-${key}`), 'model.vindex')
    p = extractVindexDir(QWEN_FIXTURE, out, {
      dtype,
      level,
      modelName: 'knowledge-qwen2-6l',
      workers: 0,
    }).then(() => out)
    extracted.set(key, p)
  }
  return p
}
