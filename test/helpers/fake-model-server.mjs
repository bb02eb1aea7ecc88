// A misbehaving model server for test/sql/remote-models.test.ts, run as a
// child process (a server in the test's own process could not answer while
// the SQL call blocks it). Usage: node fake-model-server.mjs MODE
//   garbage  /v1/stats is fine, every call answers 200 with text that is not JSON
//   shape    /v1/stats is fine, calls answer a table with the wrong number of columns
//   slow     /v1/stats is fine, calls answer after 5 s
//   error    /v1/stats is fine, calls answer HTTP 500 with an HTML page
// Prints {"listening": url} when ready; counts aborted requests in /count.
import { createServer } from 'node:http'

const mode = process.argv[2]
let aborted = 0
let calls = 0
const stats = {
  model: 'fake',
  family: 'test',
  layers: 6,
  hidden_size: 256,
  vocab_size: 2595,
  extract_level: 'browse',
  features_per_layer: 1024,
  architecture: 'test',
  dtype: 'f16',
  // a misbehaving pglite-infer serve (not a larql-server, whose calls map elsewhere)
  server: 'pglite-infer',
}
const server = createServer((req, res) => {
  if (req.url.startsWith('/v1/stats')) return res.end(JSON.stringify(stats))
  if (req.url === '/count') return res.end(JSON.stringify({ aborted, calls }))
  if (req.url === '/v1/health') return res.end('{"status":"ok"}')
  calls++
  req.resume()
  if (mode === 'garbage') return res.end('<html>this is not json')
  if (mode === 'shape') return res.end(JSON.stringify({ columns: ['a'], rows: [['1']] }))
  if (mode === 'error') {
    res.writeHead(500, { 'content-type': 'text/html' })
    return res.end('<html>Internal Server Error</html>')
  }
  if (mode === 'slow') {
    const t = setTimeout(
      () => res.end(JSON.stringify({ columns: ['similar_to'], rows: [['0.5']] })),
      5000,
    )
    res.on('close', () => {
      if (!res.writableEnded) {
        aborted++
        clearTimeout(t)
      }
    })
  }
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(
    `${JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` })}\n`,
  )
})
