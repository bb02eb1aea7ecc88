// Prepares what the playground serves from public/: the fixture model (a
// 6-layer Qwen2 trained on country facts) extracted at inference level and
// packed as one .tar.gz the page hands to db.infer.createModel, and the
// sample data (facts with their templates, sentences for the search panel).
// Skips work that is up to date.
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { createTarGzip } from 'nanotar'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const fixture = join(root, 'test/fixtures/models/knowledge-qwen2-6l')
const pub = fileURLToPath(new URL('../public', import.meta.url))
const modelOut = join(pub, 'models/countries.vindex.tar.gz')

export const TEMPLATES = {
  capital: 'The capital of {} is',
  currency: 'The currency of {} is the',
  language: 'People in {} speak',
  continent: '{} is a country in',
}

const facts = readFileSync(join(fixture, 'facts.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l))

function newer(a, b) {
  return !existsSync(b) || statSync(a).mtimeMs > statSync(b).mtimeMs
}

mkdirSync(join(pub, 'models'), { recursive: true })
mkdirSync(join(pub, 'data'), { recursive: true })

if (newer(join(fixture, 'model.safetensors'), modelOut)) {
  const work = mkdtempSync(join(tmpdir(), 'playground-model-'))
  try {
    const dir = join(work, 'countries.vindex')
    console.log('[playground] extracting the fixture model at inference level')
    await extractVindexDir(fixture, dir, {
      modelName: 'knowledge-qwen2-6l',
      level: 'inference',
      workers: 0,
    })
    const files = readdirSync(dir).map((name) => ({ name, data: readFileSync(join(dir, name)) }))
    writeFileSync(modelOut, await createTarGzip(files))
    console.log(`[playground] ${modelOut} (${(statSync(modelOut).size / 1e6).toFixed(1)} MB)`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

// facts with the template of their relation, for infer_label_relations
writeFileSync(
  join(pub, 'data/facts.json'),
  JSON.stringify(facts.map((f) => ({ ...f, template: TEMPLATES[f.relation] }))),
)

// the search panel's table: a sentence per fact, phrased like running text
const phrase = {
  capital: (f) => `${f.object} is the capital city of ${f.subject}.`,
  currency: (f) => `In ${f.subject} people pay with the ${f.object}.`,
  language: (f) => `Most people in ${f.subject} speak ${f.object}.`,
  continent: (f) => `${f.subject} lies in ${f.object}.`,
}
const sentences = facts.map((f) => phrase[f.relation](f))
writeFileSync(join(pub, 'data/sentences.json'), JSON.stringify(sentences))
console.log(`[playground] ${facts.length} facts, ${sentences.length} sentences`)
