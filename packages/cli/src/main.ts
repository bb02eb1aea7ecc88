#!/usr/bin/env node
/**
 * pglite-infer command line. Hand-rolled on node:util parseArgs to stay
 * dependency-light. Commands: extract, inspect, serve (the model server,
 * which lives in the pglite-infer package: it needs PGlite and pg_infer).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { basename, resolve } from 'node:path'
import { isVindexError, type ExtractLevel, type StorageDtype } from '@pglite-infer/vindex'
import { extractCommand } from './extract.js'
import { inspectCommand } from './inspect.js'

const USAGE = `usage:
  pglite-infer extract <hf-model-dir> -o <out.vindex> [--level browse|attention|inference|all]
                       [--dtype f16|f32] [--top-k N] [--layers N] [--workers N] [--name NAME]
                       [--quiet] [--force] [--compute auto|onnx|webgpu|js]
      extract a vindex from a HuggingFace checkpoint directory; refuses an existing
      non-empty output directory unless --force (which replaces it); down_meta runs
      on a GPU through WebGPU when there is one, else ONNX Runtime when it loads
      (--compute auto, the default), else in JS workers
  pglite-infer inspect <vindex> [--verify] [--json]
      validate a vindex and print its dimensions and files (--verify: checksums too)
  pglite-infer serve <vindex>|<name>=<vindex>... [--port N | --socket PATH] [--host H]
                     [--level browse|inference|all] [--queue-limit N] [--max-body BYTES]
                     [--max-prompt BYTES] [--log]
      serve models over HTTP (larql-server's JSON API and /v1/pglite/*) for
      infer_create_model_remote(); one copy of each model for every client
  pglite-infer serve --pg-port N [--data-dir DIR] [<vindex>|<name>=<vindex>...] [--host H]
                     [--level L] [--pg-max-connections N] [--allow-dir DIR]... [--log]
      serve a PGlite with pg_infer, pgvector and pg_trgm over the PostgreSQL wire
      protocol (psql, any driver); one connection unless --pg-max-connections
      (needs the pglite-infer package; see docs/remote-models.md, docs/deployment.md)
  pglite-infer --help | -h | help      this text
  pglite-infer --version | -v          the version of the command line`

/** The version in this package's package.json (dist/main.js -> ../package.json). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  return String(pkg.version)
}

/** A usage problem: printed with the usage text, exit code 1. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  switch (command) {
    case 'extract':
      return runExtract(rest)
    case 'inspect':
      return runInspect(rest)
    case 'serve':
      return runServe(rest)
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      process.stdout.write(`${USAGE}\n`)
      return
    case 'version':
    case '--version':
    case '-v':
    case '-V':
      process.stdout.write(`${version()}\n`)
      return
    default:
      throw new UsageError(`unknown command "${command}"`)
  }
}

async function runExtract(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    output: { type: 'string', short: 'o' },
    level: { type: 'string', default: 'browse' },
    dtype: { type: 'string', default: 'f16' },
    'top-k': { type: 'string', default: '10' },
    layers: { type: 'string' },
    workers: { type: 'string' },
    name: { type: 'string' },
    quiet: { type: 'boolean', short: 'q', default: false },
    force: { type: 'boolean', short: 'f', default: false },
    compute: { type: 'string', default: 'auto' },
  })
  if (positionals.length !== 1) throw new UsageError('extract needs exactly one <hf-model-dir>')
  if (!values.output) throw new UsageError('extract needs -o <out.vindex>')
  const level = oneOf(
    values.level as string,
    ['browse', 'attention', 'inference', 'all'],
    '--level',
  )
  const dtype = oneOf(values.dtype as string, ['f16', 'f32'], '--dtype')
  const modelDir = resolve(positionals[0]!)
  await extractCommand({
    modelDir,
    outDir: resolve(values.output as string),
    level: level as ExtractLevel,
    dtype: dtype as StorageDtype,
    topK: positiveInt(values['top-k'] as string, '--top-k'),
    maxLayers:
      values.layers === undefined ? undefined : positiveInt(values.layers as string, '--layers'),
    workers:
      values.workers === undefined
        ? undefined
        : nonNegativeInt(values.workers as string, '--workers'),
    name: (values.name as string | undefined) ?? basename(modelDir),
    quiet: values.quiet as boolean,
    force: values.force as boolean,
    compute: oneOf(values.compute as string, ['auto', 'onnx', 'webgpu', 'js'], '--compute') as
      'auto' | 'onnx' | 'webgpu' | 'js',
  })
}

async function runInspect(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    verify: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  })
  if (positionals.length !== 1) throw new UsageError('inspect needs exactly one <vindex> directory')
  await inspectCommand(resolve(positionals[0]!), {
    verify: values.verify as boolean,
    json: values.json as boolean,
  })
}

/**
 * The model server is part of the pglite-infer package (which depends on this
 * one, so this one cannot depend on it): loaded by name at run time.
 */
async function runServe(args: string[]): Promise<void> {
  const spec = 'pglite-infer/server'
  let mod: { serveCommand(argv: string[]): Promise<void> }
  try {
    mod = (await import(spec)) as typeof mod
  } catch (e) {
    throw new Error(
      `serve needs the pglite-infer package (npm install pglite-infer): ${(e as Error).message}`,
    )
  }
  try {
    await mod.serveCommand(args)
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      throw new UsageError((e as Error).message)
    throw e
  }
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options']

function parse(
  args: string[],
  options: Options,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

function oneOf(v: string, allowed: string[], flag: string): string {
  if (!allowed.includes(v))
    throw new UsageError(`${flag} must be one of ${allowed.join(', ')} (got "${v}")`)
  return v
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} must be a positive integer (got "${v}")`)
  return n
}

function nonNegativeInt(v: string, flag: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`${flag} must be a non-negative integer (got "${v}")`)
  return n
}

/** One line naming the file and the fix; exit code 1. */
function report(e: unknown): void {
  if (e instanceof UsageError) {
    process.stderr.write(`pglite-infer: ${e.message}\n${USAGE}\n`)
  } else if (isVindexError(e)) {
    const hint = e.hint ? `; fix: ${e.hint}` : ''
    process.stderr.write(`pglite-infer: error ${e.code}: ${e.message}${hint}\n`)
  } else {
    const err = e as NodeJS.ErrnoException
    const where = err.path ? `${err.path}: ` : ''
    process.stderr.write(`pglite-infer: ${where}${err.message ?? String(e)}\n`)
  }
  process.exitCode = 1
}

main(process.argv.slice(2)).catch(report)
