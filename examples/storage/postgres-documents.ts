// Documents in PostgreSQL, shared by every replica of a fleet.
import { likePrefix, type DocumentStore } from './documents.js'
import type { ExampleDatabase } from './postgres.js'

export function postgresDocuments (db: ExampleDatabase): DocumentStore {
  const { pool } = db
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
    async scrub () { await db.vacuum() },
    async close () {}
  }
}
