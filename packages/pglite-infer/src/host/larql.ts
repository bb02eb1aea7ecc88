/**
 * Remote models on a real larql-server (docs/remote-models.md).
 *
 * pg_infer's C side sends every call on a remote model as POST
 * /v1/pglite/call (function, arguments as text, forwarded settings). A
 * larql-server has no such endpoint: when the server is one (its /v1/stats
 * does not say `"server": "pglite-infer"`), each call is mapped onto
 * larql-server's own endpoints the way pg_infer's RemoteBackend
 * (src/backend/remote.rs) maps its Backend trait, and the answer is turned
 * back into the {columns, rows} table the C side reads:
 *
 *   walk(p, top)              GET  /v1/walk?prompt=&top=
 *   nearest_to(e, layer, top) GET  /v1/walk?prompt=&top=&layers=N
 *   infer_explain_walk        GET  /v1/walk, bands from /v1/stats
 *   describe(e, m, min)       GET  /v1/describe?entity=[&min_score=]
 *   implies(s, o)             GET  /v1/describe?entity=s, then any target equal to o (case-insensitive)
 *   infer(p, top)             POST /v1/infer {"prompt","top","mode":"dense"}
 *   infer_show_relations      GET  /v1/relations
 *   infer_show_layers, infer_layer_bands   GET /v1/stats (features_per_layer, layer_bands)
 *   infer_warmup(m, entities) POST /v1/warmup {"entities"}
 *
 * Everything else (similar_to, <~>, the column index, embeddings,
 * infer_show_features...) has no larql-server endpoint and raises 0A000.
 */
import { HostError } from './types.js'

/** What C sends to /v1/pglite/call. */
interface CallBody {
  model: string
  function: string
  model_arg: number
  args: { type: string; value: string | null }[]
  settings?: Record<string, string>
}

/** One synchronous GET/POST returning the answer's body (errors raise). */
export type Fetch = (method: 'GET' | 'POST', path: string, body?: string) => string

interface Table {
  columns: string[]
  rows: (string | number | boolean | null)[][]
}

const enc = encodeURIComponent

function json(url: string, path: string, body: string): Record<string, unknown> {
  try {
    const v = JSON.parse(body)
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v
  } catch {
    // below
  }
  throw new HostError(
    `the larql-server at ${url} answered ${path} with something that is not a JSON object`,
    'XX001',
  )
}

function list(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x !== null) as never) : []
}

function unsupported(url: string, fn: string, how = ''): HostError {
  return new HostError(
    `${fn}()${how} on a model served by a larql-server (${url}): larql-server has no endpoint for it; ` +
      'serve the vindex with `pglite-infer serve` or register it locally',
    '0A000',
  )
}

/** The band of each layer from /v1/stats' layer_bands ([first, last] per band). */
function bandsOf(stats: Record<string, unknown>): (layer: number) => string {
  const b = (stats.layer_bands ?? {}) as Record<string, unknown>
  return (layer) => {
    for (const name of ['syntax', 'knowledge', 'output']) {
      const r = b[name]
      if (Array.isArray(r) && layer >= Number(r[0]) && layer <= Number(r[1])) return name
    }
    return ''
  }
}

/**
 * Runs one /v1/pglite/call body against a larql-server through `fetch`;
 * returns the {columns, rows} JSON the C side reads.
 */
export function larqlCall(url: string, rawBody: string, fetch: Fetch): string {
  const call = JSON.parse(rawBody) as CallBody
  const fn = call.function
  const arg = (i: number): string | null => call.args[i]?.value ?? null
  const int = (i: number, fallback: number) => {
    const v = arg(i)
    return v === null ? fallback : Number(v)
  }
  const model = `model=${enc(call.model)}`
  const get = (path: string) => json(url, path, fetch('GET', path))
  const post = (path: string, body: unknown) =>
    json(url, path, fetch('POST', path, JSON.stringify(body)))
  const hits = (r: Record<string, unknown>) =>
    list(r.hits).map((h) => ({
      layer: Number(h.layer),
      feature: Number(h.feature),
      score: Number(h.gate_score),
      target: typeof h.target === 'string' && h.target !== '' ? h.target : null,
    }))
  // larql-server takes no pg_infer settings (infer.describe_top_k and the
  // others are the server's own); its limit is a cut of the edge list,
  // which describe() does not have, so none is sent
  const describe = (entity: string, min: string | null) => {
    let path = `/v1/describe?entity=${enc(entity)}&${model}`
    if (min !== null && Number(min) > 0) path += `&min_score=${enc(min)}`
    return list(get(path).edges)
  }
  let t: Table
  switch (fn) {
    case 'walk': {
      // larql-server's walk takes no mode / band / per_layer
      if (arg(3) !== null || arg(4) !== null || (arg(5) !== null && arg(5) !== 'f'))
        throw unsupported(url, 'walk', ' with mode, band or per_layer')
      const r = get(`/v1/walk?prompt=${enc(arg(0) ?? '')}&top=${int(1, 10)}&${model}`)
      t = {
        columns: ['layer', 'feature', 'activation', 'concept'],
        rows: hits(r).map((h) => [h.layer, h.feature, h.score, h.target]),
      }
      break
    }
    case 'nearest_to': {
      const layer = int(1, 0)
      const r = get(
        `/v1/walk?prompt=${enc(arg(0) ?? '')}&top=${int(2, 20)}&layers=${layer}&${model}`,
      )
      t = {
        columns: ['feature', 'token', 'score', 'also'],
        rows: hits(r)
          .filter((h) => h.layer === layer)
          .map((h) => [h.feature, h.target, h.score, null]),
      }
      break
    }
    case 'infer_explain_walk': {
      const band = bandsOf(get(`/v1/stats?${model}`))
      const r = get(`/v1/walk?prompt=${enc(arg(0) ?? '')}&top=${int(1, 5)}&${model}`)
      t = {
        columns: ['layer', 'band', 'feature', 'activation', 'token', 'also'],
        rows: hits(r).map((h) => [h.layer, band(h.layer), h.feature, h.score, h.target, null]),
      }
      break
    }
    case 'describe': {
      t = {
        columns: ['relation', 'target', 'confidence', 'layer'],
        rows: describe(arg(0) ?? '', arg(2)).map((e) => [
          typeof e.relation === 'string' && e.relation !== '' ? e.relation : null,
          String(e.target ?? ''),
          Number(e.gate_score),
          Number(e.layer),
        ]),
      }
      break
    }
    case 'implies': {
      const object = (arg(1) ?? '').toLowerCase()
      const hit = describe(arg(0) ?? '', null).some(
        (e) => String(e.target ?? '').toLowerCase() === object,
      )
      t = { columns: ['implies'], rows: [[hit]] }
      break
    }
    case 'infer': {
      const r = post(`/v1/infer?${model}`, {
        prompt: arg(0) ?? '',
        top: int(1, 10),
        mode: 'dense',
      })
      t = {
        columns: ['token', 'probability', 'rank'],
        rows: list(r.predictions).map((p, i) => [
          String(p.token ?? ''),
          Number(p.probability),
          i + 1,
        ]),
      }
      break
    }
    case 'infer_show_relations': {
      const r = get(`/v1/relations?${model}`)
      t = {
        columns: ['relation', 'count', 'max_score', 'layers', 'examples'],
        rows: list(r.relations).map((x) => [
          String(x.token ?? ''),
          Number(x.count),
          Number(x.max_score ?? 0),
          Array.isArray(x.layers) ? x.layers.join(',') : '',
          Array.isArray(x.examples) ? x.examples.join(', ') : '',
        ]),
      }
      break
    }
    case 'infer_show_layers':
    case 'infer_layer_bands': {
      const s = get(`/v1/stats?${model}`)
      const band = bandsOf(s)
      const layers = Number(s.layers ?? s.num_layers ?? 0)
      const per = Array.isArray(s.features) ? s.features : null
      const rows: Table['rows'] = []
      for (let l = 0; l < layers; l++)
        rows.push(
          fn === 'infer_layer_bands'
            ? [l, band(l)]
            : [l, band(l), Number(per ? per[l] : (s.features_per_layer ?? 0))],
        )
      t = {
        columns: fn === 'infer_layer_bands' ? ['layer', 'band'] : ['layer', 'band', 'num_features'],
        rows,
      }
      break
    }
    case 'infer_warmup': {
      const entities = parseTextArray(arg(1))
      const r = post(`/v1/warmup?${model}`, { entities })
      t = {
        columns: ['infer_warmup'],
        rows: [
          [`warmed ${Number(r.warmed ?? 0)}, already cached ${Number(r.already_cached ?? 0)}`],
        ],
      }
      break
    }
    default:
      throw unsupported(url, fn)
  }
  return JSON.stringify(t)
}

/** A PostgreSQL text[] literal's elements (NULL or absent: none). */
function parseTextArray(v: string | null): string[] {
  if (v === null || v === '{}') return []
  const out: string[] = []
  const s = v.slice(1, -1)
  let i = 0
  while (i < s.length) {
    if (s[i] === '"') {
      let cur = ''
      i++
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\') i++
        cur += s[i++]
      }
      out.push(cur)
      i += 2 // closing quote and comma
    } else {
      const end = s.indexOf(',', i)
      out.push(s.slice(i, end < 0 ? s.length : end))
      i = end < 0 ? s.length : end + 1
    }
  }
  return out
}
