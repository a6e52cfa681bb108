// The example host's documents (models, words, corpora' metadata, jobs, callbacks, results): JSON by
// (instance, kind, id). SQLite (one server) and PostgreSQL (a fleet) implement it.

export interface Doc { [key: string]: unknown }

/** Documents by (instance, kind, id). One table; its primary key answers every lookup. */
export interface DocumentStore {
  put(instance: string, kind: string, id: string, doc: Doc): Promise<void>
  get(instance: string, kind: string, id: string): Promise<Doc | null>
  /** Documents of a kind whose id starts with `prefix`, oldest first. */
  list(instance: string, kind: string, prefix?: string): Promise<Doc[]>
  delete(instance: string, kind: string, ids: readonly string[]): Promise<void>
  /**
   * Called by the erasers after a deletion removed documents: the bytes of what was deleted must
   * not stay in the store's files (docs/ARCHITECTURE.md, Deletion: complete).
   */
  scrub(): Promise<void>
  close(): Promise<void>
}

/** A LIKE pattern matching ids that start with `prefix` (escape character `\`). */
export function likePrefix (prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => '\\' + c) + '%'
}
