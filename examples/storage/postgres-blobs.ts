// Bodies in PostgreSQL, in chunked rows: every replica of a fleet reads them and every replica's
// eraser reaches them, so no byte of a customer is on one replica's disk (docs/ARCHITECTURE.md, Invariants: complete).
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
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
      const insert = async (data: Buffer): Promise<void> => {
        await pool.query('INSERT INTO stt_example_blob_chunks (instance, kind, id, version, n, data) VALUES ($1, $2, $3, $4, $5, $6)',
          [instance, kind, id, version, n++, data])
      }
      try {
        for await (const chunk of source) {
          size += chunk.length
          if (size > limit) throw new BodyTooLarge(limit)
          parts.push(chunk)
          pending += chunk.length
          if (pending < CHUNK_BYTES) continue
          let joined = Buffer.concat(parts, pending)
          while (joined.length >= CHUNK_BYTES) {
            await insert(joined.subarray(0, CHUNK_BYTES)) // awaiting here is the backpressure on the upload
            joined = joined.subarray(CHUNK_BYTES)
          }
          parts = joined.length > 0 ? [Buffer.from(joined)] : [] // a copy, so the joined buffer can be freed
          pending = joined.length
        }
        if (pending > 0) await insert(Buffer.concat(parts, pending))
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
