// The bodies the example stores (audio, corpora, grammars): streamed in with a size limit, streamed
// out by range, removed by the erasers. Files in DATA_DIR (one server) or PostgreSQL (a fleet).
import type { Readable } from 'node:stream'

/** A stored body, read as a stream of bytes [start, end) without loading it whole. */
export interface StoredBytes {
  readonly size: number
  stream(start?: number, end?: number): Readable
}

export interface BlobStore {
  /** Streams `source` in, never holding it whole; over `limit` bytes it stops, keeps nothing and throws BodyTooLarge. */
  write(instance: string, kind: string, id: string, source: AsyncIterable<Buffer>, limit: number): Promise<number>
  /** The stored body, or null. */
  open(instance: string, kind: string, id: string): Promise<StoredBytes | null>
  /** Removes bodies; a missing one is not an error. */
  remove(instance: string, kind: string, ids: readonly string[]): Promise<void>
}

export class BodyTooLarge extends Error {
  readonly limit: number
  constructor (limit: number) {
    super(`The request body is larger than ${limit} bytes.`)
    this.limit = limit
  }
}

/** Reads bytes [start, end) of a stored body into memory: for headers, never for whole bodies. */
export async function readRange (bytes: StoredBytes, start: number, end: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of bytes.stream(start, Math.min(end, bytes.size))) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
