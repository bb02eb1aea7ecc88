/**
 * The unmutated vindexes the fuzzer starts from: tiny random checkpoints of
 * several families extracted at level inference, and the knowledge-qwen2-6l
 * fixture at level browse. Extracted in-process into memory (a few seconds
 * in all); index.json gets a fixed `extracted_at` so every run mutates the
 * same bytes.
 */
import { MemorySink, extractVindex } from '@pglite-infer/vindex'
import { DirectoryFileSet } from '@pglite-infer/vindex/node'
import { rmSync } from 'node:fs'
import { QWEN_FIXTURE } from '../helpers/paths.js'
import { makeTinyCheckpoint, type TinyFamily } from '../vindex/tiny-checkpoints.js'

export type Level = 'browse' | 'inference'

export interface Base {
  /** Short name, also part of the baseline model's name (base_<name>). */
  name: string
  family: string
  level: Level
  dtype: 'f16' | 'f32'
  vocab: number
  files: Map<string, Uint8Array>
}

interface BaseSpec {
  name: string
  family: TinyFamily | 'fixture'
  dtype: 'f16' | 'f32'
  level: Level
}

export const BASE_SPECS: BaseSpec[] = [
  { name: 'qwen2_f16', family: 'qwen2', dtype: 'f16', level: 'inference' },
  { name: 'llama_f32', family: 'llama', dtype: 'f32', level: 'inference' },
  { name: 'gpt2_f32', family: 'gpt2', dtype: 'f32', level: 'inference' },
  { name: 'gpt2_f16', family: 'gpt2', dtype: 'f16', level: 'inference' },
  { name: 'gemma2_f16', family: 'gemma2', dtype: 'f16', level: 'inference' },
  { name: 'knowledge_f16', family: 'fixture', dtype: 'f16', level: 'browse' },
]

const text = (b: Uint8Array): string => new TextDecoder().decode(b)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

export async function buildBases(): Promise<Base[]> {
  const out: Base[] = []
  for (const spec of BASE_SPECS) {
    let dir = QWEN_FIXTURE
    let tmp: string | undefined
    if (spec.family !== 'fixture') {
      const ck = await makeTinyCheckpoint(spec.family, { seed: 16 })
      dir = tmp = ck.dir
    }
    const sink = new MemorySink()
    const files = new DirectoryFileSet(dir, true)
    try {
      await extractVindex(files, sink, {
        level: spec.level,
        dtype: spec.dtype,
        topK: spec.family === 'fixture' ? 10 : 3,
        modelName: spec.name,
      })
    } finally {
      await files.close()
      if (tmp) rmSync(tmp, { recursive: true, force: true })
    }
    const index = JSON.parse(text(sink.files.get('index.json')!))
    if (index.source) index.source.extracted_at = '2026-01-01T00:00:00.000Z'
    sink.files.set('index.json', bytes(JSON.stringify(index, null, 2)))
    out.push({
      name: spec.name,
      family: index.family,
      level: spec.level,
      dtype: spec.dtype,
      vocab: index.vocab_size,
      files: new Map([...sink.files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    })
  }
  return out
}
