import { rmSync } from 'node:fs'
import {
  MemorySink,
  VindexError,
  extractVindex,
  openVindex,
  vindexFromBytes,
  type VindexErrorCode,
} from '@pglite-infer/vindex'
import { DirectoryFileSet } from '@pglite-infer/vindex/node'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTinyCheckpoint } from './tiny-checkpoints.js'

let good: Map<string, Uint8Array>
let ckDir: string
const made: string[] = []
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })))

beforeAll(async () => {
  const ck = await makeTinyCheckpoint('qwen2', { seed: 5 })
  ckDir = ck.dir
  made.push(ck.dir)
  const sink = new MemorySink()
  const files = new DirectoryFileSet(ck.dir, true)
  await extractVindex(files, sink, { level: 'inference', dtype: 'f16', topK: 3 }).finally(() =>
    files.close(),
  )
  good = sink.files
})

type Mutate = (files: Map<string, Uint8Array>) => void
const text = (b: Uint8Array): string => new TextDecoder().decode(b)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

function editIndex(edit: (index: Record<string, any>) => void): Mutate {
  return (files) => {
    const index = JSON.parse(text(files.get('index.json')!))
    edit(index)
    files.set('index.json', bytes(JSON.stringify(index)))
  }
}

async function openMutated(mutate: Mutate, verifyChecksums = false): Promise<VindexError> {
  const files = new Map([...good].map(([k, v]) => [k, v.slice()]))
  mutate(files)
  try {
    await openVindex(vindexFromBytes(files), { verifyChecksums })
  } catch (e) {
    if (e instanceof VindexError) return e
    throw e
  }
  throw new Error('corrupt vindex opened without error')
}

const CASES: [string, VindexErrorCode, string, Mutate, boolean?][] = [
  [
    'missing gate_vectors.bin',
    'MISSING_FILE',
    'gate_vectors.bin',
    (f) => void f.delete('gate_vectors.bin'),
  ],
  [
    'missing tokenizer.json',
    'MISSING_FILE',
    'tokenizer.json',
    (f) => void f.delete('tokenizer.json'),
  ],
  ['missing index.json', 'MISSING_FILE', 'index.json', (f) => void f.delete('index.json')],
  [
    'truncated embeddings.bin',
    'TRUNCATED',
    'embeddings.bin',
    (f) => void f.set('embeddings.bin', f.get('embeddings.bin')!.subarray(0, 100)),
  ],
  [
    'truncated down_meta.bin',
    'TRUNCATED',
    'down_meta.bin',
    (f) => void f.set('down_meta.bin', f.get('down_meta.bin')!.subarray(0, 10)),
  ],
  [
    'truncated weight file',
    'TRUNCATED',
    'down_weights.bin',
    (f) => void f.set('down_weights.bin', f.get('down_weights.bin')!.subarray(0, 64)),
  ],
  [
    'oversized gate_vectors.bin',
    'SIZE_MISMATCH',
    'gate_vectors.bin',
    (f) =>
      void f.set('gate_vectors.bin', new Uint8Array(f.get('gate_vectors.bin')!.byteLength + 4)),
  ],
  [
    'bad down_meta magic',
    'BAD_MAGIC',
    'down_meta.bin',
    (f) => void f.get('down_meta.bin')!.set([0, 0, 0, 0], 0),
  ],
  [
    'bad down_meta version',
    'UNSUPPORTED_VERSION',
    'down_meta.bin',
    (f) => void new DataView(f.get('down_meta.bin')!.buffer).setUint32(4, 9, true),
  ],
  [
    'down_meta layer count',
    'DIMENSION_MISMATCH',
    'down_meta.bin',
    (f) => void new DataView(f.get('down_meta.bin')!.buffer).setUint32(8, 3, true),
  ],
  [
    'down_meta feature count',
    'DIMENSION_MISMATCH',
    'down_meta.bin',
    (f) => void new DataView(f.get('down_meta.bin')!.buffer).setUint32(16, 47, true),
  ],
  [
    'index.json bad JSON',
    'BAD_JSON',
    'index.json',
    (f) => void f.set('index.json', bytes('{"version": 2,')),
  ],
  [
    'tokenizer.json bad JSON',
    'BAD_JSON',
    'tokenizer.json',
    (f) => void f.set('tokenizer.json', bytes('{"model": ')),
  ],
  [
    'no weight manifest anywhere',
    'MISSING_FILE',
    'weight_manifest.json',
    (f) => {
      editIndex((i) => delete i.weights)(f)
      f.delete('weight_manifest.json')
    },
  ],
  ['unsupported version', 'UNSUPPORTED_VERSION', 'index.json', editIndex((i) => (i.version = 3))],
  ['unknown dtype', 'UNKNOWN_DTYPE', 'index.json', editIndex((i) => (i.dtype = 'q8'))],
  ['wrong hidden size', 'DIMENSION_MISMATCH', 'index.json', editIndex((i) => (i.hidden_size = 33))],
  [
    'layers[] shorter than num_layers',
    'DIMENSION_MISMATCH',
    'index.json',
    editIndex((i) => i.layers.pop()),
  ],
  ['wrong vocab size', 'TRUNCATED', 'embeddings.bin', editIndex((i) => (i.vocab_size = 513))],
  ['missing num_layers', 'INVALID_INDEX', 'index.json', editIndex((i) => delete i.num_layers)],
  [
    'weight entry shape mismatch',
    'DIMENSION_MISMATCH',
    'index.json',
    editIndex((i) => (i.weights[0].shape = [1, 2])),
  ],
  [
    'unsupported family',
    'UNSUPPORTED_ARCHITECTURE',
    'index.json',
    editIndex((i) => (i.family = 'mamba')),
  ],
  [
    'checksum mismatch',
    'CHECKSUM_MISMATCH',
    'gate_vectors.bin',
    (f) => void (f.get('gate_vectors.bin')![5]! ^= 0xff),
    true,
  ],
]

describe('corrupt vindexes fail with specific typed errors', () => {
  it.each(CASES)('%s -> %s', async (_name, code, file, mutate, verify) => {
    const e = await openMutated(mutate, verify ?? false)
    expect(e.code).toBe(code)
    expect(e.file).toBe(file)
    expect(e.message).toContain(file)
  })

  it('messages carry expected and found values', async () => {
    const e = await openMutated(editIndex((i) => (i.version = 3)))
    expect(e.message).toBe('index.json: unsupported vindex version (expected 2, found 3)')
    const m = await openMutated((f) => void f.get('down_meta.bin')!.set([1, 2, 3, 4], 0))
    expect(m.message).toBe(
      'down_meta.bin: bad magic number (expected 1145914708 (0x444D4554), found 67305985 (0x4030201))',
    )
    expect(m.expected).toBe(0x444d4554)
  })

  it('the uncorrupted vindex opens and verifies', async () => {
    const v = await openVindex(vindexFromBytes(good), { verifyChecksums: true })
    expect(v.numLayers).toBe(2)
  })
})

describe('bad checkpoints fail extraction with typed errors', () => {
  async function extractError(edit: (dir: string) => Promise<void>): Promise<VindexError> {
    const ck = await makeTinyCheckpoint('llama', { seed: 9 })
    made.push(ck.dir)
    await edit(ck.dir)
    const files = new DirectoryFileSet(ck.dir, true)
    try {
      await extractVindex(files, new MemorySink())
    } catch (e) {
      if (e instanceof VindexError) return e
      throw e
    } finally {
      await files.close()
    }
    throw new Error('extraction succeeded')
  }

  it('unsupported architecture names it', async () => {
    const e = await extractError((d) =>
      writeFile(
        join(d, 'config.json'),
        JSON.stringify({ architectures: ['MambaForCausalLM'], model_type: 'mamba' }),
      ),
    )
    expect(e.code).toBe('UNSUPPORTED_ARCHITECTURE')
    expect(e.message).toContain('config.json: unsupported architecture MambaForCausalLM')
  })

  it('config dimensions that disagree with the tensors', async () => {
    const e = await extractError(async (d) => {
      const c = JSON.parse(
        text(
          new Uint8Array(
            await import('node:fs/promises').then((m) => m.readFile(join(d, 'config.json'))),
          ),
        ),
      )
      await writeFile(join(d, 'config.json'), JSON.stringify({ ...c, hidden_size: 64 }))
    })
    expect(e.code).toBe('DIMENSION_MISMATCH')
    expect(e.file).toBe('model.safetensors')
  })

  it('unsupported tensor dtype', async () => {
    const e = await extractError(async (d) => {
      const fs = await import('node:fs/promises')
      const buf = await fs.readFile(join(d, 'model.safetensors'))
      // Rename the first tensor's dtype F32 -> I32 in the JSON header (same length).
      const at = buf.indexOf('"dtype":"F32"')
      buf.write('"dtype":"I32"', at)
      await fs.writeFile(join(d, 'model.safetensors'), buf)
    })
    expect(e.code).toBe('UNKNOWN_DTYPE')
    expect(e.message).toContain('model.safetensors')
    expect(e.found).toBe('I32')
  })

  it('missing tensor', async () => {
    const e = await extractError(async (d) => {
      const c = JSON.parse(
        text(
          new Uint8Array(
            await import('node:fs/promises').then((m) => m.readFile(join(d, 'config.json'))),
          ),
        ),
      )
      await writeFile(join(d, 'config.json'), JSON.stringify({ ...c, num_hidden_layers: 3 }))
    })
    expect(e.code).toBe('MISSING_TENSOR')
    expect(e.message).toContain('layers.2.mlp.gate_proj.weight')
  })
})
