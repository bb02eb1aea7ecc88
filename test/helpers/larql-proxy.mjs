// A stand-in for a real larql-server, for test/sql/remote-models.test.ts: it
// forwards larql-server's endpoints (/v1/stats, /v1/walk, /v1/describe,
// /v1/infer, /v1/relations, /v1/warmup, ...) to a pglite-infer serve, but
// answers /v1/pglite/* with 404 and drops pglite-infer's own fields from
// /v1/stats, as larql-server does. Usage: node larql-proxy.mjs TARGET_URL
// Prints {"listening": url}; GET /count gives the paths it forwarded.
import { createServer, request } from 'node:http'

const target = new URL(process.argv[2])
const paths = {}
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname
  if (path === '/count') return res.end(JSON.stringify(paths))
  if (path.startsWith('/v1/pglite/')) {
    res.writeHead(404, { 'content-type': 'application/json' })
    return res.end('{"error":"not found"}')
  }
  paths[path] = (paths[path] ?? 0) + 1
  const up = request(
    {
      host: target.hostname,
      port: target.port,
      path: req.url,
      method: req.method,
      headers: req.headers,
    },
    (r) => {
      const chunks = []
      r.on('data', (c) => chunks.push(c))
      r.on('end', () => {
        let body = Buffer.concat(chunks).toString()
        if (path === '/v1/stats' && r.statusCode === 200) {
          const s = JSON.parse(body)
          for (const k of ['server', 'architecture', 'dtype', 'num_layers', 'features']) delete s[k]
          body = JSON.stringify(s)
        }
        res.writeHead(r.statusCode, { 'content-type': 'application/json' })
        res.end(body)
      })
    },
  )
  up.on('error', () => res.destroy())
  req.pipe(up)
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(
    `${JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` })}\n`,
  )
})
