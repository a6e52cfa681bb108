// The single-server document store: insertion order from the rowid (no max(seq) scan per write; its
// cost is measured by bench/example-words.ts), and files written by the earlier schema still open.
import { test } from 'tap'
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqliteDocuments } from '../examples/storage/sqlite-documents.js'

function dir (t: { teardown: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'fcd-docs-'))
  t.teardown(() => { rmSync(d, { recursive: true, force: true }) })
  return d
}

test('documents list in insertion order; an overwrite keeps its place', async (t) => {
  const path = join(dir(t), 'documents.db')
  const docs = sqliteDocuments(path)
  for (const w of ['b', 'a', 'c']) await docs.put('i', 'word', `m/${w}`, { word: w })
  await docs.put('i', 'word', 'm/a', { word: 'a', again: true })
  t.same((await docs.list('i', 'word', 'm/')).map((d) => d.word), ['b', 'a', 'c'])
  await docs.delete('i', 'word', ['m/c'])
  await docs.put('i', 'word', 'm/d', { word: 'd' })
  t.same((await docs.list('i', 'word', 'm/')).map((d) => d.word), ['b', 'a', 'd'], 'a new row after a delete still comes last')
  await docs.close()
})

test('a documents.db of the earlier schema (seq column) opens and keeps its order', async (t) => {
  const path = join(dir(t), 'documents.db')
  const old = new Database(path)
  old.exec(`CREATE TABLE documents (instance TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (instance, kind, id))`)
  const insert = old.prepare("INSERT INTO documents VALUES ('i', 'word', ?, ?, ?)")
  for (const [n, w] of ['x', 'y'].entries()) insert.run(`m/${w}`, JSON.stringify({ word: w }), n + 1)
  old.close()
  const docs = sqliteDocuments(path)
  await docs.put('i', 'word', 'm/z', { word: 'z' })
  t.same((await docs.list('i', 'word', 'm/')).map((d) => d.word), ['x', 'y', 'z'])
  await docs.close()
})
