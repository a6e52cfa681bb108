// The example server's settings from its environment, each checked here with a message that names
// the variable (and never echoes a key or a password).
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export class BadEnvironment extends Error {}

export interface Environment {
  port: number
  host: string
  dataDir: string
  apiKeys: Record<string, string>
  /** The generated key when STT_API_KEYS is unset, to print. */
  demoKey: string | null
  databaseUrl: string | undefined
  logLevel: string | undefined
}

function apiKeys (value: string | undefined): { keys: Record<string, string>, demo: string | null } {
  if (value === undefined || value.trim() === '') {
    const demo = randomBytes(16).toString('hex')
    return { keys: { [demo]: 'demo-instance' }, demo }
  }
  const keys: Record<string, string> = {}
  for (const pair of value.split(',')) {
    const colon = pair.lastIndexOf(':')
    const key = pair.slice(0, colon).trim()
    const instance = pair.slice(colon + 1).trim()
    if (colon <= 0 || key === '' || instance === '') throw new BadEnvironment('STT_API_KEYS must look like key:instance,key2:instance2')
    keys[key] = instance
  }
  return { keys, demo: null }
}

export function readEnvironment (env: NodeJS.ProcessEnv): Environment {
  const portText = env.PORT ?? '3000'
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || port > 65535) throw new BadEnvironment('PORT must be a whole number from 0 to 65535')
  const host = env.HOST ?? '127.0.0.1'
  if (host.trim() === '') throw new BadEnvironment('HOST must not be empty')
  const dataDir = env.DATA_DIR ?? './data'
  if (dataDir.trim() === '') throw new BadEnvironment('DATA_DIR must not be empty')
  const databaseUrl = env.DATABASE_URL === undefined || env.DATABASE_URL === '' ? undefined : env.DATABASE_URL
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new BadEnvironment('DATABASE_URL must be a postgres:// or postgresql:// URL (unset it to use SQLite in DATA_DIR)')
  }
  const logLevel = env.LOG_LEVEL === undefined || env.LOG_LEVEL === '' ? undefined : env.LOG_LEVEL
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel)) throw new BadEnvironment(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`)
  const { keys, demo } = apiKeys(env.STT_API_KEYS)
  return { port, host, dataDir: resolve(dataDir), apiKeys: keys, demoKey: demo, databaseUrl, logLevel }
}
