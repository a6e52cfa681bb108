// PostgreSQL for tests: DATABASE_URL, else the machine's server. Each test file uses its own
// schema and drops it. Outside CI a missing server skips the tests with the reason; in CI it fails.
import pg from 'pg'
import { randomBytes } from 'node:crypto'

export const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Why PostgreSQL tests cannot run here, or false when they can. Throws in CI. */
export async function pgSkipReason (): Promise<string | false> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return false
  } catch (err) {
    const reason = `PostgreSQL not reachable at ${PG_URL.replace(/\/\/[^@]*@/, '//')}: ${(err as Error).message}`
    if (process.env.CI === 'true') throw new Error(reason + ' (CI needs it: .ci/run starts it)')
    return reason
  } finally {
    await client.end().catch(() => {})
  }
}

export function uniqueSchema (): string {
  return 'fcd_test_' + randomBytes(6).toString('hex')
}

export async function dropSchemas (schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
  await client.end()
}

/** Terminates every connection a store holds (they carry application_name = the schema). */
export async function dropConnections (applicationName: string): Promise<number> {
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  const { rows } = await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName])
  await client.end()
  return rows.length
}
