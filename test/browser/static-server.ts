/**
 * A static file server for browser tests: serves a built site with the
 * headers a host must send (cross-origin isolation, and optionally a
 * Content-Security-Policy).
 */
import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.gz': 'application/gzip',
  '.data': 'application/octet-stream',
  '.png': 'image/png',
}

export interface StaticServer {
  url: string
  close(): Promise<void>
}

/**
 * Serves `root`, and each directory of `mounts` under its URL prefix
 * (e.g. { '/vindex/': dir }).
 */
export async function serveStatic(
  root: string,
  headers: Record<string, string> = {},
  mounts: Record<string, string> = {},
): Promise<StaticServer> {
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const mount = Object.keys(mounts).find((prefix) => path.startsWith(prefix))
    const base = mount ? mounts[mount]! : root
    let file = normalize(join(base, mount ? path.slice(mount.length) : path))
    if (!file.startsWith(base)) {
      res.writeHead(403).end()
      return
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html')
    if (!existsSync(file)) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': statSync(file).size,
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      ...headers,
    })
    createReadStream(file).pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}
