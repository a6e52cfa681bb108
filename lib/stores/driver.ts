// The database drivers are optional peer dependencies (docs/ARCHITECTURE.md, "Stores"): a host
// that uses PostgreSQL only never installs (or compiles) better-sqlite3, and the reverse. A driver
// is loaded when its store opens, and a missing one is named with the command that installs it.
import { createRequire } from 'node:module'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'

const require = createRequire(import.meta.url)

/** The drivers the stores use, with the major version they are written for. */
export const DRIVERS: Record<string, { store: string, install: string }> = {
  'better-sqlite3': { store: 'sqliteStore', install: 'npm install better-sqlite3@12' },
  pg: { store: 'postgresStore', install: 'npm install pg@8' }
}

/** Loads a driver by package name, or says which package to install. */
export function loadDriver<T> (name: string): T {
  const { store, install } = DRIVERS[name]
  try {
    return require(name) as T
  } catch (err) {
    const e = err as { code?: string, message?: string }
    // Only the driver itself missing: a broken install of it (a failed native build) says so itself.
    if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${name}'`)) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${store} needs the "${name}" package, which is not installed: run \`${install}\``)
    }
    throw err
  }
}
