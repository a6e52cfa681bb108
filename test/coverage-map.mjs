// Coverage counts the library (index.ts, lib/, plugins/), not tests, examples or benchmarks.
// Without a reachable PostgreSQL outside CI its tests skip, so its adapter is not counted then.
import { readdirSync } from 'node:fs'
import { connect } from 'node:net'

const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test')
const pgReachable = process.env.CI === 'true' || await new Promise((resolve) => {
  const socket = connect(Number(url.port || 5432), url.hostname)
  socket.setTimeout(2000, () => { socket.destroy(); resolve(false) })
  socket.on('connect', () => { socket.end(); resolve(true) })
  socket.on('error', () => resolve(false))
})

const library = ['index.ts', ...['lib', 'plugins'].flatMap((dir) =>
  readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`))]
  .filter((f) => pgReachable || f !== 'lib/stores/postgres.ts')

export default () => library
