// A fresh PostgreSQL database per test (for child processes that take only a DATABASE_URL), and a
// search of every live row in it.
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { PG_URL } from './pg.js'

export interface TestDatabase { name: string, url: string, drop: () => Promise<void> }

export async function createDatabase (): Promise<TestDatabase> {
  const name = 'fcd_test_' + randomBytes(6).toString('hex')
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(PG_URL)
  url.pathname = '/' + name
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    }
  }
}

/** Every live row of every table outside the system schemas, as text (bytea as \x hex). */
export async function liveRows (url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    const { rows: tables } = await c.query<{ schemaname: string, tablename: string }>(
      "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
    let all = ''
    for (const { schemaname, tablename } of tables) {
      const { rows } = await c.query<{ text: string | null }>(`SELECT string_agg(t::text, E'\\n') AS text FROM "${schemaname}"."${tablename}" t`)
      all += `${schemaname}.${tablename}:\n${rows[0].text ?? ''}\n`
    }
    return all
  } finally {
    await c.end()
  }
}
