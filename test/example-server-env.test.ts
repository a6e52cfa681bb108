// The example server as `npm run example` runs it: a bad setting or a busy port is one clear line on
// stderr and exit code 1 (real child processes).
import { test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killExample, runExampleToExit, startExample } from './helpers/example-process.js'

function dataDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-env-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

test('each bad environment variable: one line on stderr naming it, exit code 1', async (t) => {
  const DATA_DIR = dataDir(t)
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'eighty' }, /^example server: PORT must be a whole number from 0 to 65535\n$/],
    [{ PORT: '70000' }, /^example server: PORT must be/],
    [{ PORT: '-1' }, /^example server: PORT must be/],
    [{ HOST: ' ' }, /^example server: HOST must not be empty\n$/],
    [{ STT_API_KEYS: 'secret-key-without-instance' }, /^example server: STT_API_KEYS must look like key:instance,key2:instance2\n$/],
    [{ STT_API_KEYS: 'k:a,:b' }, /^example server: STT_API_KEYS must look like/],
    [{ DATABASE_URL: 'mysql://user:hunter2@db/x' }, /^example server: DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL/],
    [{ DATABASE_URL: 'postgres://postgres:hunter2@127.0.0.1:1/none' }, /^example server: cannot open its storage: .*ECONNREFUSED/],
    [{ LOG_LEVEL: 'loud' }, /^example server: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent\n$/],
    [{ HOST: '203.0.113.7' }, /^example server: HOST 203.0.113.7 is not an address of this machine\n$/]
  ]
  const runs = await Promise.all(cases.map(async ([env]) => await runExampleToExit({ DATA_DIR, ...env })))
  for (const [i, [env, expected]] of cases.entries()) {
    const what = JSON.stringify(env)
    const run = runs[i]
    t.equal(run.code, 1, `${what}: exit code 1`)
    t.match(run.stderr, expected, `${what}: the line says what is wrong`)
    t.equal(run.stderr.trim().split('\n').length, 1, `${what}: one line, no stack`)
    t.notMatch(run.stderr + run.stdout, /hunter2|secret-key/, `${what}: no password or key is echoed`)
  }
})

test('a port in use: one line on stderr, exit code 1', async (t) => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { busy.close() })
  const port = (busy.address() as { port: number }).port
  const run = await runExampleToExit({ DATA_DIR: dataDir(t), PORT: String(port), STT_API_KEYS: 'k:i' })
  t.equal(run.code, 1)
  t.equal(run.stderr, `example server: port ${port} on 127.0.0.1 is in use; set PORT to a free port\n`)
})

test('good settings: it listens and prints its address', async (t) => {
  const child = await startExample({ DATA_DIR: dataDir(t), STT_API_KEYS: 'k:i' })
  t.teardown(() => killExample(child))
  const res = await fetch(`${child.url}/v1/recognitions`, { headers: { authorization: 'Basic ' + Buffer.from('apikey:k').toString('base64') } })
  t.equal(res.status, 200)
})
