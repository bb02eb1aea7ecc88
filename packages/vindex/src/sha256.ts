import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'

/**
 * SHA-256 through WebCrypto (crypto.subtle), available in browsers and in
 * Node 20 as globalThis.crypto. One-shot: streaming writers in Node hash
 * with node:crypto instead (see node.ts).
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle
  if (!subtle) throw new Error('WebCrypto (crypto.subtle) is not available in this environment')
  const digest = await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

type NodeCrypto = typeof import('node:crypto')
let nodeCrypto: NodeCrypto | null | undefined

/**
 * SHA-256 without awaiting, for host hooks that run inside a SQL call:
 * node:crypto where Node is (about 2 GB/s), else @noble/hashes (pure JS).
 */
export function sha256HexSync(bytes: Uint8Array): string {
  if (nodeCrypto === undefined) {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } })
      .process
    nodeCrypto = (proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined) ?? null
  }
  if (nodeCrypto) return nodeCrypto.createHash('sha256').update(bytes).digest('hex')
  return bytesToHex(sha256(bytes))
}
