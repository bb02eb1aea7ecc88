/**
 * The worker thread of remote-call.ts: runs HTTP requests to model servers
 * (TCP or Unix socket) and answers on the MessagePort it was given. Errors
 * carry the SQLSTATE the SQL call raises:
 *   08001  cannot connect (refused, no such socket, unknown host)
 *   08006  the connection failed or timed out after it was made; a server error
 *          without a readable message
 *   53300  the server's queue stayed full through every retry (503)
 *   the server's own SQLSTATE for an error it explains ({error, sqlstate})
 */
import { request as httpRequest, Agent as HttpAgent } from 'node:http'
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import type { AbortMessage, CallMessage, CallReply } from './remote-call-protocol.js'

const { signal, port } = workerData as { signal: SharedArrayBuffer; port: MessagePort }
const flag = new Int32Array(signal)
/** Answers larger than this are refused (a server gone wrong must not exhaust memory). */
const MAX_ANSWER = 256 * 1024 * 1024
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 })
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 4 })
const inflight = new Map<number, () => void>()

class CallError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
    readonly retry = false,
  ) {
    super(message)
  }
}

function reply(r: CallReply): void {
  port.postMessage(r)
  Atomics.add(flag, 0, 1)
  Atomics.notify(flag, 0)
}

function where(m: CallMessage): string {
  const t = m.target
  return t.socketPath
    ? `unix://${t.socketPath}`
    : `${t.protocol}//${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}${t.base}`
}

function once(m: CallMessage): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t = m.target
    const send = t.protocol === 'https:' ? httpsRequest : httpRequest
    let settled = false
    const fail = (e: CallError) => {
      if (settled) return
      settled = true
      req.destroy()
      reject(e)
    }
    const req = send(
      {
        method: m.method,
        path: `${t.base}${m.path}`,
        ...(t.socketPath ? { socketPath: t.socketPath } : { host: t.host, port: t.port }),
        agent: t.socketPath ? undefined : t.protocol === 'https:' ? httpsAgent : httpAgent,
        headers: {
          accept: 'application/json',
          ...(m.body !== undefined
            ? {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(m.body),
              }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (c: Buffer) => {
          size += c.length
          if (size > MAX_ANSWER)
            fail(
              new CallError('54000', `${where(m)}: the answer is larger than ${MAX_ANSWER} bytes`),
            )
          else chunks.push(c)
        })
        res.on('end', () => {
          if (settled) return
          settled = true
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })
        })
        res.on('error', (e) => fail(lost(m, e)))
      },
    )
    req.setTimeout(m.timeoutMs, () =>
      fail(
        new CallError(
          '08006',
          `${where(m)}: the model server did not answer within infer.remote_timeout_ms (${m.timeoutMs} ms)`,
        ),
      ),
    )
    req.on('error', (e) => fail(connectError(m, e as NodeJS.ErrnoException)))
    inflight.set(m.id, () => fail(new CallError('57014', 'canceled')))
    if (m.body !== undefined) req.end(m.body)
    else req.end()
  })
}

function connectError(m: CallMessage, e: NodeJS.ErrnoException): CallError {
  const code = e.code ?? ''
  if (
    [
      'ECONNREFUSED',
      'ENOENT',
      'ENOTFOUND',
      'EAI_AGAIN',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'EACCES',
    ].includes(code)
  )
    return new CallError(
      '08001',
      `cannot connect to the model server at ${where(m)} (${code}): is \`pglite-infer serve\` running there?`,
      true,
    )
  return lost(m, e)
}

function lost(m: CallMessage, e: Error & { code?: string }): CallError {
  return new CallError(
    '08006',
    `the connection to the model server at ${where(m)} failed: ${e.code ?? e.message}`,
    e.code === 'ECONNRESET' || e.code === 'EPIPE',
  )
}

/** The error a non-2xx answer stands for. */
function statusError(m: CallMessage, status: number, body: string): CallError {
  let err: { error?: unknown; sqlstate?: unknown } = {}
  try {
    err = JSON.parse(body) as typeof err
  } catch {
    // not JSON: described below
  }
  const text = typeof err.error === 'string' ? err.error : body.slice(0, 200).trim()
  const state =
    typeof err.sqlstate === 'string' && /^[0-9A-Z]{5}$/.test(err.sqlstate)
      ? err.sqlstate
      : undefined
  if (status === 503)
    return new CallError(state ?? '53300', `the model server at ${where(m)} is busy: ${text}`, true)
  if (state) return new CallError(state, `model server ${where(m)}: ${text}`)
  if (status === 404)
    return new CallError(
      '08006',
      `the server at ${where(m)} has no ${m.path.replace(/\?.*$/, '')} (HTTP 404): is it a pglite-infer model server?`,
    )
  return new CallError('08006', `the model server at ${where(m)} failed (HTTP ${status}): ${text}`)
}

async function run(m: CallMessage): Promise<void> {
  let last: CallError | undefined
  for (let attempt = 0; attempt <= m.retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 250)))
    if (!inflight.has(m.id) && attempt > 0) return // aborted between attempts
    try {
      const r = await once(m)
      if (r.status >= 200 && r.status < 300) {
        reply({ id: m.id, status: r.status, body: r.body })
        return
      }
      last = statusError(m, r.status, r.body)
    } catch (e) {
      last =
        e instanceof CallError
          ? e
          : new CallError('08006', `model server ${where(m)}: ${(e as Error).message}`)
    }
    if (last.sqlstate === '57014') return // the caller has gone
    if (!last.retry) break
  }
  reply({ id: m.id, error: { sqlstate: last!.sqlstate, message: last!.message } })
}

parentPort!.on('message', (msg: CallMessage | AbortMessage) => {
  if ('abort' in msg) {
    const stop = inflight.get(msg.abort)
    inflight.delete(msg.abort)
    stop?.()
    return
  }
  inflight.set(msg.id, () => undefined)
  void run(msg).finally(() => inflight.delete(msg.id))
})
