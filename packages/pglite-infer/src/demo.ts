/**
 * The quick-start demo (`npm run demo`): extracts the repository's fixture
 * model (a small Qwen2 trained on country facts) into a vindex, registers it
 * in PGlite with pg_infer, and runs knowledge queries against it.
 *
 *   node packages/pglite-infer/dist/demo.js [hf-model-dir]
 */
import { PGlite } from '@electric-sql/pglite'
import { extractVindexDir } from '@pglite-infer/vindex/node'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createPgInfer } from './index.js'

const modelDir =
  process.argv[2] ??
  fileURLToPath(new URL('../../../test/fixtures/models/knowledge-qwen2-6l', import.meta.url))

async function show(db: PGlite, sql: string): Promise<void> {
  const { rows } = await db.query<Record<string, unknown>>(sql)
  console.log(`\n${sql}`)
  console.table(
    rows.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [
          k,
          typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(4)) : v,
        ]),
      ),
    ),
  )
}

const work = mkdtempSync(join(tmpdir(), 'pglite-infer-demo-'))
try {
  const vindex = join(work, 'model.vindex')
  console.log(`extracting ${modelDir}\n     into ${vindex}`)
  await extractVindexDir(modelDir, vindex, {
    modelName: 'knowledge-qwen2-6l',
    level: 'inference',
    workers: 0,
  })

  // SQL may name host files only in directories the application allows
  const db = await PGlite.create({
    extensions: { infer: createPgInfer({ allowedHostDirectories: [work] }) },
  })
  await db.exec('CREATE EXTENSION pg_infer')
  const { rows } = await db.query<{ pg: string; ext: string }>(
    'select version() as pg, infer_version() as ext',
  )
  console.log(`\n${rows[0]!.pg}\npg_infer ${rows[0]!.ext}`)

  await db.query("select infer_create_model('countries', $1, 'inference')", [vindex])
  await db.exec("set infer.default_model = 'countries'")
  const templates: Record<string, string> = {
    capital: 'The capital of {} is',
    currency: 'The currency of {} is the',
    language: 'People in {} speak',
    continent: '{} is a country in',
  }
  for (const [relation, template] of Object.entries(templates))
    await db.query("select infer_add_relation('countries', $1, $2)", [relation, template])
  await show(
    db,
    'select name, architecture, layers, hidden, features, vocab, dtype, bytes from infer_models()',
  )
  await show(db, "select * from walk('The capital of France is', 8)")
  await show(db, "select * from infer('The capital of France is', 5)")
  await show(db, "select * from describe('India') limit 6")

  // relation labels learned from the fixture's facts (when the model has them)
  const factsFile = join(modelDir, 'facts.jsonl')
  if (existsSync(factsFile)) {
    const facts = readFileSync(factsFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { subject: string; relation: string; object: string })
      .filter((f) => f.relation in templates)
    await db.exec('create table facts (subject text, relation text, object text, template text)')
    await db.query(
      'insert into facts select * from unnest($1::text[], $2::text[], $3::text[], $4::text[])',
      [
        facts.map((f) => f.subject),
        facts.map((f) => f.relation),
        facts.map((f) => f.object),
        facts.map((f) => templates[f.relation]),
      ],
    )
    console.log(`\nlearning relation labels from ${facts.length} facts in ${factsFile}`)
    await show(db, "select * from infer_label_relations('countries', 'facts')")
    await show(db, "select * from walk('The capital of France is', 6, mode => 'forward')")
    await show(db, "select * from describe('France') limit 10")
  }
  await show(
    db,
    "select similar_to('France', 'Germany') as france_germany, similar_to('France', 'banana') as france_banana",
  )

  await db.exec('create table docs (id serial primary key, title text)')
  await db.exec(`insert into docs (title) values
    ('Paris is the capital of France.'), ('The currency of Japan is the yen.'),
    ('People in Brazil speak Portuguese.'), ('Kenya is a country in Africa.'),
    ('The capital of Germany is Berlin.'), ('Bananas are yellow.')`)
  await db.exec("create index on docs using infer (title) with (model = 'countries')")
  await show(
    db,
    "select title, title <~> 'France' as distance from docs order by title <~> 'France' limit 3",
  )
  await db.close()
} finally {
  rmSync(work, { recursive: true, force: true })
}
