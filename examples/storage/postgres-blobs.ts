// Bodies in PostgreSQL, in chunked rows: every replica of a fleet reads them and every replica's
// eraser reaches them, so no byte of a customer is on one replica's disk (docs/ARCHITECTURE.md, Invariants: complete).
import { randomUUID } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { BodyTooLarge, type BlobStore, type StoredBytes } from './blobs.js'
import type { ExampleDatabase } from './postgres.js'

/**
 * Bytes per row: a 100 MB body is 400 rows, and an upload or a reader holds at most two chunks in
 * memory. Every chunk but the last is exactly this long, so a byte offset names its row.
 */
export const CHUNK_BYTES = 256 * 1024

export function postgresBlobs (db: ExampleDatabase): BlobStore {
  const { pool } = db

  async function * chunks (instance: string, kind: string, id: string, version: string, start: number, end: number): AsyncGenerator<Buffer> {
    for (let n = Math.floor(start / CHUNK_BYTES); n * CHUNK_BYTES < end; n++) {
      const { rows } = await pool.query<{ data: Buffer }>(
        'SELECT data FROM stt_example_blob_chunks WHERE instance = $1 AND kind = $2 AND id = $3 AND version = $4 AND n = $5',
        [instance, kind, id, version, n])
      if (rows.length === 0) throw new Error('The stored body was removed while it was being read.')
      const offset = n * CHUNK_BYTES
      yield rows[0].data.subarray(Math.max(0, start - offset), Math.min(CHUNK_BYTES, end - offset))
    }
  }

  return {
    async write (instance, kind, id, source, limit) {
      const version = randomUUID()
      let size = 0
      let n = 0
      let parts: Buffer[] = [] // what has arrived since the last chunk was stored
      let pending = 0
      let inflight: Promise<void> = Promise.resolve() // an INSERT the cleanup below must wait for
      const insert = async (data: Buffer): Promise<void> => {
        await pool.query('INSERT INTO stt_example_blob_chunks (instance, kind, id, version, n, data) VALUES ($1, $2, $3, $4, $5, $6)',
          [instance, kind, id, version, n++, data])
      }
      // A Writable whose callback waits for the INSERT: that wait is the backpressure on the upload.
      // pipeline() ends the upload on an error the same way the file store's does.
      const sink = new Writable({
        write (chunk: Buffer, _encoding, done) {
          size += chunk.length
          if (size > limit) { done(new BodyTooLarge(limit)); return }
          parts.push(chunk)
          pending += chunk.length
          if (pending < CHUNK_BYTES) { done(); return }
          let joined = Buffer.concat(parts, pending)
          parts = []
          pending = 0
          inflight = (async () => {
            while (joined.length >= CHUNK_BYTES) {
              await insert(joined.subarray(0, CHUNK_BYTES))
              joined = joined.subarray(CHUNK_BYTES)
            }
            if (joined.length > 0) {
              parts = [Buffer.from(joined)] // a copy, so the joined buffer can be freed
              pending = joined.length
            }
          })()
          inflight.then(() => { done() }, done)
        },
        final (done) {
          inflight = pending > 0 ? insert(Buffer.concat(parts, pending)) : Promise.resolve()
          inflight.then(() => { done() }, done)
        }
      })
      try {
        await pipeline(source instanceof Readable ? source : Readable.from(source), sink)
        // The new version becomes the body in one transaction, and the one it replaces goes.
        await db.transaction(async (client) => {
          const { rows } = await client.query<{ version: string }>(
            'SELECT version FROM stt_example_blobs WHERE instance = $1 AND kind = $2 AND id = $3 FOR UPDATE', [instance, kind, id])
          await client.query(`INSERT INTO stt_example_blobs (instance, kind, id, version, size) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (instance, kind, id) DO UPDATE SET version = excluded.version, size = excluded.size`, [instance, kind, id, version, size])
          if (rows.length > 0) {
            await client.query('DELETE FROM stt_example_blob_chunks WHERE instance = $1 AND kind = $2 AND id = $3 AND version = $4', [instance, kind, id, rows[0].version])
          }
        })
      } catch (err) {
        await inflight.catch(() => {})
        await pool.query('DELETE FROM stt_example_blob_chunks WHERE instance = $1 AND kind = $2 AND id = $3 AND version = $4', [instance, kind, id, version]).catch(() => {})
        throw err
      }
      return size
    },

    async open (instance, kind, id): Promise<StoredBytes | null> {
      const { rows } = await pool.query<{ version: string, size: string }>(
        'SELECT version, size FROM stt_example_blobs WHERE instance = $1 AND kind = $2 AND id = $3', [instance, kind, id])
      if (rows.length === 0) return null
      const { version } = rows[0]
      const size = Number(rows[0].size)
      return {
        size,
        stream: (start = 0, end = size) => Readable.from(chunks(instance, kind, id, version, start, Math.min(end, size)), { objectMode: false })
      }
    },

    // Every version of each body, finished or not (a write a killed replica left behind).
    async remove (instance, kind, ids) {
      await pool.query(`WITH heads AS (DELETE FROM stt_example_blobs WHERE instance = $1 AND kind = $2 AND id = ANY($3::text[]))
        DELETE FROM stt_example_blob_chunks WHERE instance = $1 AND kind = $2 AND id = ANY($3::text[])`, [instance, kind, ids])
    }
  }
}
