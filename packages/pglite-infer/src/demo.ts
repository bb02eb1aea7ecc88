/**
 * The quick-start demo (`npm run demo`): starts PGlite with pg_infer and runs
 * a few real queries against the repository's fixture model.
 *
 *   node packages/pglite-infer/dist/demo.js [model-dir]
 */
import { PGlite } from '@electric-sql/pglite'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { pgInfer } from './index.js'

const modelDir =
  process.argv[2] ??
  fileURLToPath(new URL('../../../test/fixtures/models/knowledge-qwen2-6l', import.meta.url))

const db = await PGlite.create({ extensions: { pgInfer } })
await db.exec('CREATE EXTENSION pg_infer')

const { rows: version } = await db.query<{ pg: string; ext: string }>(
  'select version() as pg, infer_version() as ext',
)
console.log(`${version[0].pg}\npg_infer ${version[0].ext}\n`)

const tokenizer = readFileSync(`${modelDir}/tokenizer.json`, 'utf8')
const prompts = ['The capital of France is', 'People in Japan speak', 'Bogotá']
console.log(`tokenizer: ${modelDir}/tokenizer.json\n`)
console.log('select prompt, infer_tokenize(prompt, tokenizer_json) from ...\n')
for (const prompt of prompts) {
  const { rows } = await db.query<{ ids: number[] }>('select infer_tokenize($1, $2) as ids', [
    prompt,
    tokenizer,
  ])
  console.log(`${JSON.stringify(prompt).padEnd(28)} -> {${rows[0].ids.join(',')}}`)
}
await db.close()
