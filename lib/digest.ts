// Customer IDs are keyed-hashed before they reach a store or a log (docs/ARCHITECTURE.md, "Deletion", "Logs"): a
// deletion record keeps only this digest, and nobody without the installation secret can test a
// guessed ID against it.
import { createHmac } from 'node:crypto'

export function customerDigest (secret: Buffer, customerId: string): string {
  return createHmac('sha256', secret).update(customerId, 'utf8').digest('base64url')
}

/** A short, non-reversible tag for logs: the first 12 characters of the digest. */
export function logTag (digest: string): string {
  return digest.slice(0, 12)
}
