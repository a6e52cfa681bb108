// VACUUM ANALYZE of a bench schema's PostgreSQL tables: autovacuum's work, which the server the
// bench runs on may have off (this project's CI machine does). Both churn: `labels` grows, and
// `pending` gets a row per label that its commit deletes.
import pg from 'pg'

export async function vacuumSchema (url: string, schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    await c.query(`VACUUM ANALYZE ${schema}.labels`)
    await c.query(`VACUUM ANALYZE ${schema}.pending`)
  } finally {
    await c.end()
  }
}
