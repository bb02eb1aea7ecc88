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
