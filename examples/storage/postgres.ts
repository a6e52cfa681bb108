// The example's tables in PostgreSQL (a fleet's shared storage): one pool, created once under a lock
// so replicas starting together do not race, and VACUUM after erasing.
import pg from 'pg'

/** How many connections a replica uses for its documents and bytes. */
const POOL_SIZE = 10
/** Any constant both replicas agree on: the lock that serializes CREATE TABLE at start. */
const MIGRATION_LOCK = 0x5717_e8a3

export interface ExampleDatabase {
  pool: pg.Pool
  /** Runs `fn` in one transaction on one connection. */
  transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T>
  /** VACUUMs the tables after rows of a customer were deleted; concurrent requests share one run. */
  vacuum(): Promise<void>
  close(): Promise<void>
}

const TABLES = `
  CREATE TABLE IF NOT EXISTS stt_example_documents (
    instance text NOT NULL, kind text NOT NULL, id text NOT NULL, doc jsonb NOT NULL, seq bigserial,
    PRIMARY KEY (instance, kind, id));
  -- A stored body (audio, corpus, grammar): its current version and size.
  CREATE TABLE IF NOT EXISTS stt_example_blobs (
    instance text NOT NULL, kind text NOT NULL, id text NOT NULL, version uuid NOT NULL, size bigint NOT NULL,
    PRIMARY KEY (instance, kind, id));
  -- Its bytes, in chunks. Every chunk names its resource, so an eraser reaches chunks of writes that
  -- never finished (a replica killed mid-upload) as well as finished ones.
  CREATE TABLE IF NOT EXISTS stt_example_blob_chunks (
    instance text NOT NULL, kind text NOT NULL, id text NOT NULL, version uuid NOT NULL, n integer NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (instance, kind, id, version, n));`

async function transaction<T> (pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

export async function openExampleDatabase (connectionString: string): Promise<ExampleDatabase> {
  const pool = new pg.Pool({ connectionString, max: POOL_SIZE })
  pool.on('error', () => {}) // a dropped idle connection; the next query reconnects
  await transaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await client.query(TABLES)
  })

  let running: Promise<void> | null = null
  let again: Promise<void> | null = null
  const vacuumOnce = async (): Promise<void> => {
    await pool.query('VACUUM stt_example_blob_chunks, stt_example_blobs, stt_example_documents')
  }
  return {
    pool,
    transaction: async (fn) => await transaction(pool, fn),
    // A run that started before this call may have missed its rows: wait for one that starts after.
    async vacuum () {
      if (running === null) {
        running = vacuumOnce().finally(() => { running = null })
        return await running
      }
      again ??= running.catch(() => {}).then(async () => {
        again = null
        running = vacuumOnce().finally(() => { running = null })
        return await running
      })
      return await again
    },
    async close () { await pool.end() }
  }
}
