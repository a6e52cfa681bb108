// Documents in one SQLite file (DATA_DIR/documents.db), for a single server.
import Database from 'better-sqlite3'
import { likePrefix, type DocumentStore } from './documents.js'

export function sqliteDocuments (path: string): DocumentStore {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  // Deleted rows are overwritten with zeros, not just unlinked (docs/ARCHITECTURE.md, Deletion: complete).
  db.pragma('secure_delete = ON')
  // Insertion order is the rowid: SQLite gives a new row max(rowid)+1 from the table's last page,
  // without the scan per write that a max(seq) subquery costs (it grew with the store).
  db.exec(`CREATE TABLE IF NOT EXISTS documents (
    instance TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (instance, kind, id))`)
  const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('documents')").all()
  if (columns.some((c) => c.name === 'seq')) db.exec('ALTER TABLE documents DROP COLUMN seq') // files of earlier versions
  const put = db.prepare(`INSERT INTO documents (instance, kind, id, doc) VALUES (?, ?, ?, ?)
    ON CONFLICT (instance, kind, id) DO UPDATE SET doc = excluded.doc`)
  const get = db.prepare<[string, string, string], { doc: string }>('SELECT doc FROM documents WHERE instance = ? AND kind = ? AND id = ?')
  const list = db.prepare<[string, string, string], { doc: string }>("SELECT doc FROM documents WHERE instance = ? AND kind = ? AND id LIKE ? ESCAPE '\\' ORDER BY rowid")
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
    async scrub () {
      // The WAL still holds the pages as they were before the delete: copy the zeroed pages into
      // the database and truncate the WAL to nothing.
      db.pragma('wal_checkpoint(TRUNCATE)')
    },
    async close () { db.close() }
  }
}
