/**
 * The playground's panels. Each one runs real SQL (shown above its result)
 * through the database worker and draws what comes back.
 */
import { proxy, type Remote } from 'comlink'
import type { DbApi, QueryResult } from './api.js'

export interface Panel {
  id: string
  title: string
  mount(db: Remote<DbApi>): HTMLElement
}

const SVG = 'http://www.w3.org/2000/svg'

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { className?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props)
  e.append(...children)
  return e
}

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

function fmt(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4)
  if (v instanceof Date) return v.toISOString()
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

/** A result grid; cells carry the raw text the tests compare. */
export function grid(r: QueryResult): HTMLTableElement {
  const table = el('table', { className: 'grid' })
  table.append(el('thead', {}, el('tr', {}, ...r.fields.map((f) => el('th', {}, f)))))
  const body = el('tbody')
  for (const row of r.rows)
    body.append(el('tr', {}, ...r.fields.map((f) => el('td', {}, fmt(row[f])))))
  table.append(body)
  return table
}

/**
 * The common shape of a panel: title, help, a form, the SQL it ran, a
 * visualisation and the rows. `run` returns the SQL and its rows (and what to
 * draw); the result area gets data-state = done | error for tests.
 */
function panel(
  id: string,
  title: string,
  help: string,
  inputs: HTMLElement[],
  run: () => Promise<{ sql: string; result: QueryResult; viz?: Node; extra?: Node }>,
): Panel {
  return {
    id,
    title,
    mount() {
      const out = el('div', { className: 'out' })
      const button = el('button', { className: 'run', type: 'submit', disabled: true }, 'Run')
      const form = el('form', { className: 'ask' }, ...inputs, button)
      form.onsubmit = async (ev) => {
        ev.preventDefault()
        button.disabled = true
        out.dataset.state = 'running'
        try {
          const { sql, result, viz, extra } = await run()
          out.replaceChildren(
            el('pre', { className: 'sql' }, sql),
            ...(viz ? [el('div', { className: 'viz' }, viz)] : []),
            el(
              'div',
              { className: 'meta' },
              `${result.rows.length} rows in ${result.ms.toFixed(1)} ms`,
            ),
            grid(result),
            ...(extra ? [extra] : []),
          )
          out.dataset.state = 'done'
        } catch (e) {
          out.replaceChildren(
            el('div', { className: 'error' }, e instanceof Error ? e.message : String(e)),
          )
          out.dataset.state = 'error'
        } finally {
          button.disabled = false
        }
      }
      return el('section', {}, el('h2', {}, title), el('p', { className: 'help' }, help), form, out)
    },
  }
}

function textInput(name: string, value: string, placeholder = ''): HTMLInputElement {
  return el('input', { type: 'text', name, value, placeholder })
}

// ---- describe(entity) as a graph ------------------------------------------

function describeGraph(entity: string, rows: Record<string, unknown>[]): SVGElement {
  const shown = rows.slice(0, 14)
  const relations = [...new Set(shown.map((r) => String(r.relation)))]
  const rowH = 28
  const h = Math.max(shown.length, relations.length, 3) * rowH + 20
  const w = 760
  const root = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}` }) as SVGSVGElement
  const max = Math.max(...shown.map((r) => Math.abs(Number(r.confidence))), 1e-9)
  const ey = h / 2
  const relY = new Map(relations.map((r, i) => [r, ((i + 0.5) * h) / relations.length]))
  for (const r of relations) {
    root.append(
      svg('line', {
        x1: 110,
        y1: ey,
        x2: 320,
        y2: relY.get(r)!,
        stroke: '#2a333d',
        'stroke-width': 2,
      }),
    )
  }
  shown.forEach((row, i) => {
    const y = 10 + (i + 0.5) * rowH
    const width = 1 + 7 * (Math.abs(Number(row.confidence)) / max)
    root.append(
      svg('line', {
        x1: 330,
        y1: relY.get(String(row.relation))!,
        x2: 540,
        y2: y,
        stroke: '#4fb3ff',
        'stroke-opacity': 0.35 + 0.65 * (width / 8),
        'stroke-width': width,
      }),
    )
    root.append(svg('circle', { cx: 545, cy: y, r: 4, fill: '#4fb3ff' }))
    root.append(
      svg('text', { x: 556, y: y + 4 }, `${row.target}  ${Number(row.confidence).toFixed(3)}`),
    )
  })
  for (const r of relations) {
    const y = relY.get(r)!
    root.append(
      svg('rect', {
        x: 320,
        y: y - 12,
        width: 110,
        height: 24,
        rx: 12,
        fill: '#223041',
        stroke: '#ffb454',
      }),
    )
    root.append(svg('text', { x: 375, y: y + 4, 'text-anchor': 'middle' }, r))
  }
  root.append(svg('rect', { x: 10, y: ey - 16, width: 100, height: 32, rx: 16, fill: '#4fb3ff' }))
  const t = svg('text', { x: 60, y: ey + 4, 'text-anchor': 'middle' }, entity)
  t.setAttribute('style', 'fill:#04121f;font-weight:600')
  root.append(t)
  return root
}

// ---- walk(prompt) as a layer x rank heatmap --------------------------------

function walkHeatmap(rows: Record<string, unknown>[]): SVGElement {
  const layers = [...new Set(rows.map((r) => Number(r.layer)))].sort((a, b) => a - b)
  const byLayer = new Map(layers.map((l) => [l, rows.filter((r) => Number(r.layer) === l)]))
  const ranks = Math.max(...[...byLayer.values()].map((v) => v.length), 1)
  const cw = 118
  const ch = 30
  const w = 60 + layers.length * cw
  const h = 30 + ranks * ch
  const root = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}` })
  const max = Math.max(...rows.map((r) => Math.abs(Number(r.activation))), 1e-9)
  layers.forEach((l, c) => {
    root.append(
      svg('text', { x: 60 + c * cw + cw / 2, y: 18, 'text-anchor': 'middle' }, `layer ${l}`),
    )
    byLayer.get(l)!.forEach((r, i) => {
      const a = Number(r.activation)
      const alpha = 0.15 + 0.85 * (Math.abs(a) / max)
      const fill = a >= 0 ? `rgba(79,179,255,${alpha})` : `rgba(255,180,84,${alpha})`
      root.append(
        svg('rect', {
          x: 60 + c * cw + 2,
          y: 26 + i * ch,
          width: cw - 4,
          height: ch - 4,
          rx: 4,
          fill,
        }),
      )
      root.append(
        svg(
          'text',
          { x: 60 + c * cw + cw / 2, y: 26 + i * ch + 17, 'text-anchor': 'middle' },
          `${r.concept} ${a.toFixed(2)}`,
        ),
      )
    })
  })
  for (let i = 0; i < ranks; i++)
    root.append(svg('text', { x: 8, y: 26 + i * ch + 17 }, `#${i + 1}`))
  return root
}

// ---- infer(prompt) as bars -------------------------------------------------

function inferBars(rows: Record<string, unknown>[]): SVGElement {
  const w = 760
  const bh = 26
  const root = svg('svg', {
    width: w,
    height: rows.length * bh + 8,
    viewBox: `0 0 ${w} ${rows.length * bh + 8}`,
  })
  rows.forEach((r, i) => {
    const p = Number(r.probability)
    const token = JSON.stringify(String(r.token))
    root.append(svg('text', { x: 4, y: i * bh + 18 }, token))
    root.append(
      svg('rect', {
        x: 170,
        y: i * bh + 5,
        width: Math.max(2, p * 500),
        height: bh - 8,
        rx: 3,
        fill: '#4fb3ff',
      }),
    )
    root.append(
      svg(
        'text',
        { x: 178 + Math.max(2, p * 500), y: i * bh + 18 },
        `${(p * 100).toFixed(p < 0.01 ? 4 : 2)}%`,
      ),
    )
  })
  return root
}

// ---- the panels ------------------------------------------------------------

let dbRef: Remote<DbApi>
const withDb = (p: Panel): Panel => ({
  ...p,
  mount(db) {
    dbRef = db
    return p.mount(db)
  },
})

const entity = textInput('entity', 'France', 'an entity, e.g. Japan')
const walkPrompt = textInput('prompt', 'The capital of France is', 'a prompt')
const inferPrompt = textInput('prompt', 'The capital of Japan is', 'a prompt')
const searchQuery = textInput('query', 'capital of France', 'search the sentences')
const relation = textInput('relation', 'capital', 'relation')
const template = textInput('template', 'The capital city of {} is', 'template with {}')
const modelName = textInput('name', 'web', 'model name')
const modelUrl = textInput('url', '', 'http(s) URL of a vindex directory')
const modelLevel = el(
  'select',
  { name: 'level' },
  el('option', { value: 'browse' }, 'browse'),
  el('option', { value: 'inference' }, 'inference'),
)
const modelFile = el('input', { type: 'file', name: 'file', accept: '.tar,.gz,.tgz' })
const modelProgress = el('span', { className: 'meta' })
const consoleSql = el('textarea', {
  name: 'sql',
  value: `select model_name, architecture, num_layers, hidden_size, vocab_size, dtype, bytes
from infer_models();

-- pgvector beside <~>: the sentences nearest to a text's embedding
-- select body, embed <=> infer_embed('capital of Japan') as d
-- from sentences order by d limit 5;`,
})

export const PANELS: Panel[] = [
  withDb(
    panel(
      'describe',
      'describe(entity)',
      'What the model knows about an entity: the answers it predicts for each relation template, then the features its embedding lights up. Edge width is confidence.',
      [entity],
      async () => {
        const sql = 'select * from describe($1)'
        const result = await dbRef.query(sql, [entity.value])
        return {
          sql: sql.replace('$1', `'${entity.value}'`),
          result,
          viz: describeGraph(entity.value, result.rows),
        }
      },
    ),
  ),
  panel(
    'walk',
    'walk(prompt)',
    'The features each layer lights up for the prompt (8 per layer), labelled with the token each one writes. Blue: positive activation; orange: negative.',
    [walkPrompt],
    async () => {
      const sql = 'select * from walk($1, 8, per_layer => true)'
      const result = await dbRef.query(sql, [walkPrompt.value])
      return {
        sql: sql.replace('$1', `'${walkPrompt.value}'`),
        result,
        viz: walkHeatmap(result.rows),
      }
    },
  ),
  panel(
    'infer',
    'infer(prompt)',
    'A real forward pass inside PostgreSQL: the most probable next tokens.',
    [inferPrompt],
    async () => {
      const sql = 'select * from infer($1, 10)'
      const result = await dbRef.query(sql, [inferPrompt.value])
      return {
        sql: sql.replace('$1', `'${inferPrompt.value}'`),
        result,
        viz: inferBars(result.rows),
      }
    },
  ),
  panel(
    'search',
    'search with <~>',
    'ORDER BY body <~> query over 786 sentences, served by the infer column index (the plan is shown below the rows).',
    [searchQuery],
    async () => {
      const sql =
        'select id, body, round((body <~> $1)::numeric, 4) as distance\nfrom sentences order by body <~> $1 limit 10'
      const result = await dbRef.query(sql, [searchQuery.value])
      const plan = await dbRef.query(`explain ${sql}`, [searchQuery.value])
      const text = plan.rows.map((r) => String(r['QUERY PLAN'])).join('\n')
      return {
        sql: sql.replaceAll('$1', `'${searchQuery.value}'`),
        result,
        extra: el('pre', { className: 'sql plan' }, text),
      }
    },
  ),
  panel(
    'templates',
    'relation templates',
    'Add a template for a relation (describe() then asks the model with it), or learn relation labels of features from the facts table.',
    [relation, template],
    async () => {
      await dbRef.query("select infer_add_relation('countries', $1, $2)", [
        relation.value,
        template.value,
      ])
      const sql = 'select relation, template from infer.relation_templates order by relation'
      const result = await dbRef.query(sql)
      return {
        sql: `select infer_add_relation('countries', '${relation.value}', '${template.value}');\n${sql}`,
        result,
      }
    },
  ),
  panel(
    'labels',
    'learn labels',
    'Runs every fact of the facts table through the model and labels the features whose write token is the fact’s object (infer_label_relations).',
    [],
    async () => {
      const sql = "select * from infer_label_relations('countries', 'facts')"
      const result = await dbRef.query(sql)
      return { sql, result }
    },
  ),
  panel(
    'models',
    'models',
    'Register another model: a vindex directory served over http(s), or a .tar/.tar.gz of one from your disk (pglite-infer extract makes them). Its files are stored in this database.',
    [modelName, modelUrl, modelLevel, modelFile, modelProgress],
    async () => {
      const level = modelLevel.value as 'browse' | 'inference'
      const file = modelFile.files?.[0]
      const progress = (p: { stage: string; done: number; total: number }) => {
        modelProgress.textContent = `${p.stage}: ${(p.done / 1e6).toFixed(1)} MB`
      }
      if (file) {
        await dbRef.uploadModel(modelName.value, new Uint8Array(await file.arrayBuffer()), level)
      } else {
        await dbRef.addModelFromUrl(modelName.value, modelUrl.value, level, proxy(progress))
      }
      modelProgress.textContent = ''
      const sql =
        'select model_name, source, extract_level, num_layers, hidden_size, dtype, bytes, loaded\nfrom infer_models()'
      const result = await dbRef.query(sql)
      return {
        sql: `-- db.infer.createModel('${modelName.value}', ${file ? file.name : `'${modelUrl.value}'`}, { level: '${level}' })\n${sql}`,
        result,
      }
    },
  ),
  panel(
    'sql',
    'SQL console',
    'Any SQL: several statements run as a script and the last one’s rows are shown.',
    [consoleSql],
    async () => {
      const result = await dbRef.exec(consoleSql.value)
      return { sql: consoleSql.value, result }
    },
  ),
]
