// A benchmark target, run as a child process. MODE picks what is registered:
//   bare            Fastify alone
//   plugins         customerData registered; requests carry no customer ID
//   parse           customerData registered; requests carry a header, the route labels nothing
//   label           a declarative labeled route (STORE = memory | sqlite | sqlite-thread | postgres | floor)
//   ws-bare / ws-labeled   a WebSocket route without / with the plugins and a held lease
// Prints "listening <port>". GET /stats answers { maxStallMs, rss } (event-loop stall since last call).
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import customerData, { apiKeyInstances, memoryStore, postgresStore, sqliteStore, type LabelStore } from 'fastify-customer-data'
import { floorStore } from './floor-store.js'

const mode = process.env.MODE ?? 'bare'
const storeName = process.env.STORE ?? 'memory'

function store (): LabelStore {
  if (storeName === 'sqlite') return sqliteStore({ path: process.env.DB_PATH as string, synchronous: 'FULL' })
  if (storeName === 'sqlite-thread') return sqliteStore({ path: process.env.DB_PATH as string, synchronous: 'FULL', thread: true })
  if (storeName === 'postgres') return postgresStore({ connectionString: process.env.DATABASE_URL as string, schema: process.env.PG_SCHEMA })
  if (storeName === 'floor') return floorStore()
  return memoryStore()
}

const app = Fastify()
const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
app.get('/stats', async () => {
  const body = { maxStallMs: delay.max / 1e6, rss: process.memoryUsage().rss }
  delay.reset()
  return body
})

if (mode.startsWith('ws')) await app.register(websocket)
if (mode !== 'bare' && mode !== 'ws-bare') {
  await app.register(customerData, {
    store: store(),
    instance: apiKeyInstances({ keys: { 'bench-key': 'bench' } }),
    erasers: { item: async () => {} },
    batchSize: Number(process.env.BATCH_SIZE ?? 500),
    waitMs: 60_000
  })
}

let n = 0
if (mode === 'label') {
  app.post('/r', { config: { customerData: { kind: 'item', id: () => String(++n) } } }, async () => ({ ok: true }))
} else if (mode.startsWith('ws')) {
  app.get('/ws', { websocket: true }, async (socket, request) => {
    let frames = 0
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) frames++
      else socket.send(JSON.stringify({ frames }))
    })
    // A labeled session holds its lease open, as a recognition session does; frames cost nothing more.
    const lease = mode === 'ws-labeled' && request.customerIds.length > 0 ? (await request.customerData.label('item', `ws-${++n}`)).keepAlive() : null
    socket.on('close', () => { lease?.commit().catch(() => {}) })
    socket.send(JSON.stringify({ ready: true }))
  })
} else {
  app.post('/r', async () => ({ ok: true }))
}

process.once('SIGINT', () => { process.exit(0) }) // lets --cpu-prof write its profile
await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`)
