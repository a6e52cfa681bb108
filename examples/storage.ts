// The example host's own storage: documents in SQLite (or PostgreSQL) and bytes in DATA_DIR.
// Its erasers remove both, which is what fastify-customer-data asks of a host.
import Database from 'better-sqlite3'
import pg from 'pg'
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Transform, type Readable } from 'node:stream'

export interface Doc { [key: string]: unknown }

/** Documents by (instance, kind, id). One table; one index answers every lookup. */
export interface DocumentStore {
  put(instance: string, kind: string, id: string, doc: Doc): Promise<void>
  get(instance: string, kind: string, id: string): Promise<Doc | null>
  /** Documents of a kind whose id starts with `prefix`, oldest first. */
  list(instance: string, kind: string, prefix?: string): Promise<Doc[]>
  delete(instance: string, kind: string, ids: readonly string[]): Promise<void>
  close(): Promise<void>
}

function likePrefix (prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => '\\' + c) + '%'
}

export function sqliteDocuments (path: string): DocumentStore {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('secure_delete = ON')
  db.exec(`CREATE TABLE IF NOT EXISTS documents (
    instance TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (instance, kind, id))`)
  const put = db.prepare(`INSERT INTO documents (instance, kind, id, doc, seq) VALUES (?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM documents))
    ON CONFLICT (instance, kind, id) DO UPDATE SET doc = excluded.doc`)
  const get = db.prepare<[string, string, string], { doc: string }>('SELECT doc FROM documents WHERE instance = ? AND kind = ? AND id = ?')
  const list = db.prepare<[string, string, string], { doc: string }>("SELECT doc FROM documents WHERE instance = ? AND kind = ? AND id LIKE ? ESCAPE '\\' ORDER BY seq")
  const del = db.prepare('DELETE FROM documents WHERE instance = ? AND kind = ? AND id = ?')
  return {
    async put (instance, kind, id, doc) { put.run(instance, kind, id, JSON.stringify(doc)) },
    async get (instance, kind, id) {
      const row = get.get(instance, kind, id)
      return row === undefined ? null : JSON.parse(row.doc)
    },
    async list (instance, kind, prefix = '') { return list.all(instance, kind, likePrefix(prefix)).map((r) => JSON.parse(r.doc)) },
    async delete (instance, kind, ids) {
      db.transaction(() => { for (const id of ids) del.run(instance, kind, id) })()
    },
    async close () { db.close() }
  }
}

export async function postgresDocuments (connectionString: string): Promise<DocumentStore> {
  const pool = new pg.Pool({ connectionString, max: 5 })
  pool.on('error', () => {})
  await pool.query(`CREATE TABLE IF NOT EXISTS stt_example_documents (
    instance text NOT NULL, kind text NOT NULL, id text NOT NULL, doc jsonb NOT NULL, seq bigserial,
    PRIMARY KEY (instance, kind, id))`)
  return {
    async put (instance, kind, id, doc) {
      await pool.query(`INSERT INTO stt_example_documents (instance, kind, id, doc) VALUES ($1, $2, $3, $4)
        ON CONFLICT (instance, kind, id) DO UPDATE SET doc = excluded.doc`, [instance, kind, id, JSON.stringify(doc)])
    },
    async get (instance, kind, id) {
      const { rows } = await pool.query('SELECT doc FROM stt_example_documents WHERE instance = $1 AND kind = $2 AND id = $3', [instance, kind, id])
      return rows.length === 0 ? null : rows[0].doc
    },
    async list (instance, kind, prefix = '') {
      const { rows } = await pool.query("SELECT doc FROM stt_example_documents WHERE instance = $1 AND kind = $2 AND id LIKE $3 ESCAPE '\\' ORDER BY seq",
        [instance, kind, likePrefix(prefix)])
      return rows.map((r) => r.doc)
    },
    async delete (instance, kind, ids) {
      await pool.query('DELETE FROM stt_example_documents WHERE instance = $1 AND kind = $2 AND id = ANY($3::text[])', [instance, kind, ids])
    },
    async close () { await pool.end() }
  }
}

export class BodyTooLarge extends Error {
  readonly limit: number
  constructor (limit: number) {
    super(`The request body is larger than ${limit} bytes.`)
    this.limit = limit
  }
}

/** Files under DATA_DIR/files/<instance>/<kind>/<sha256 of id>, so any id is a safe file name. */
export class FileStore {
  readonly root: string
  constructor (dataDir: string) { this.root = join(dataDir, 'files') }

  path (instance: string, kind: string, id: string): string {
    const name = createHash('sha256').update(id).digest('hex')
    return join(this.root, createHash('sha256').update(instance).digest('hex').slice(0, 32), kind, name)
  }

  /** Streams `source` to the file, never holding it whole; over `limit` bytes it stops and removes the file. */
  async write (instance: string, kind: string, id: string, source: Readable, limit: number): Promise<number> {
    const file = this.path(instance, kind, id)
    await mkdir(join(file, '..'), { recursive: true })
    let bytes = 0
    const counter = new Transform({
      transform (chunk: Buffer, _enc, done) {
        bytes += chunk.length
        if (bytes > limit) done(new BodyTooLarge(limit))
        else done(null, chunk)
      }
    })
    try {
      await pipeline(source, counter, createWriteStream(file))
    } catch (err) {
      await rm(file, { force: true })
      throw err
    }
    return bytes
  }

  async size (instance: string, kind: string, id: string): Promise<number | null> {
    try {
      return (await stat(this.path(instance, kind, id))).size
    } catch {
      return null
    }
  }

  async remove (instance: string, kind: string, ids: readonly string[]): Promise<void> {
    for (const id of ids) await rm(this.path(instance, kind, id), { force: true })
  }
}
