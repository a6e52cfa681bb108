// npm run example — starts the Watson-compatible example server. A bad setting or a port in use is
// one line on stderr and exit code 1, not a stack trace.
import { buildServer } from './app.js'
import { BadEnvironment, readEnvironment, type Environment } from './environment.js'

function exit (message: string): never {
  process.stderr.write(`example server: ${message}\n`)
  process.exit(1)
}

let env: Environment
try {
  env = readEnvironment(process.env)
} catch (err) {
  exit(err instanceof BadEnvironment ? err.message : String(err))
}

let app: Awaited<ReturnType<typeof buildServer>>
try {
  app = await buildServer({
    dataDir: env.dataDir,
    apiKeys: env.apiKeys,
    databaseUrl: env.databaseUrl,
    logger: env.logLevel === undefined ? false : { level: env.logLevel }
  })
} catch (err) {
  // pg's and SQLite's messages name the problem (refused connection, unknown database, unwritable
  // directory) without the URL or its password.
  exit(`cannot open its storage: ${(err as Error).message}`)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
try {
  await app.listen({ port: env.port, host: env.host })
} catch (err) {
  const code = (err as { code?: string }).code
  await app.close().catch(() => {})
  if (code === 'EADDRINUSE') exit(`port ${env.port} on ${env.host} is in use; set PORT to a free port`)
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') exit(`HOST ${env.host} is not an address of this machine`)
  exit(`cannot listen on ${env.host}:${env.port}: ${(err as Error).message}`)
}
if (env.demoKey !== null) console.log(`demo API key: ${env.demoKey} (instance "demo-instance"; set STT_API_KEYS=key:instance to choose your own)`)
const { port } = app.server.address() as { port: number }
console.log(`listening on http://${env.host}:${port}`)
