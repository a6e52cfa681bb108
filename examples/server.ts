// npm run example — starts the Watson-compatible example server (DESIGN.md §10 environment).
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { buildServer } from './app.js'

function parseKeys (value: string | undefined): { keys: Record<string, string>, demo: string | null } {
  if (value === undefined || value.trim() === '') {
    const demo = randomBytes(16).toString('hex')
    return { keys: { [demo]: 'demo-instance' }, demo }
  }
  const keys: Record<string, string> = {}
  for (const pair of value.split(',')) {
    const colon = pair.lastIndexOf(':')
    if (colon <= 0 || colon === pair.length - 1) throw new Error('STT_API_KEYS must look like key:instance,key2:instance2')
    keys[pair.slice(0, colon).trim()] = pair.slice(colon + 1).trim()
  }
  return { keys, demo: null }
}

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
const { keys, demo } = parseKeys(process.env.STT_API_KEYS)
const app = await buildServer({
  dataDir: resolve(process.env.DATA_DIR ?? './data'),
  apiKeys: keys,
  databaseUrl: process.env.DATABASE_URL,
  logger: process.env.LOG_LEVEL === undefined ? false : { level: process.env.LOG_LEVEL }
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
await app.listen({ port, host })
if (demo !== null) console.log(`demo API key: ${demo} (instance "demo-instance"; set STT_API_KEYS=key:instance to choose your own)`)
console.log(`listening on http://${host}:${port}`)
