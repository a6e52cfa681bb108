// The seed's two curl commands, as printed in Watson's documentation, against the example server
// (a real child process, real curl): only the placeholders are filled in, and https becomes http
// because the example serves plain HTTP.
import { test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { flac } from './helpers/flac.js'
import { killExample, startExample } from './helpers/example-process.js'

const RECOGNIZE = 'curl -X POST -u "apikey:{apikey}" --header "Content-Type: audio/flac" --header "X-Watson-Metadata: customer_id={customer_ID}" --data-binary @audio.flac "https://{host}:{port}/speech-to-text/api/v1/recognize"'
const DELETE = 'curl -X DELETE -u "apikey:{apikey}" "https://{host}:{port}/speech-to-text/api/v1/user_data?customer_id={customer_ID}"'
const sh = promisify(execFile)

function filled (command: string, values: Record<string, string>): string {
  let out = command.replace('https://', 'http://')
  for (const [name, value] of Object.entries(values)) out = out.replaceAll(`{${name}}`, value)
  return out
}

function filesUnder (dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true }).map(String).filter((f) => f.split('/').length === 3)
  } catch {
    return []
  }
}

test("the README's example section prints the seed's two commands (https → http)", async (t) => {
  const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Example server'), readme.indexOf('## Performance'))
  for (const command of [RECOGNIZE, DELETE]) t.ok(section.includes(command.replace('https://', 'http://')), command.slice(0, 20))
})

test("the seed's recognize and delete commands work verbatim against the example", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-seed-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const key = 'seed-api-key'
  const server = await startExample({ DATA_DIR: join(dir, 'data'), STT_API_KEYS: `${key}:seed-instance` })
  t.teardown(() => killExample(server))
  const { hostname: host, port } = new URL(server.url)
  writeFileSync(join(dir, 'audio.flac'), flac(0.5))
  const values = { apikey: key, host, port, customer_ID: 'my_customer_ID' }

  const recognized = await sh('sh', ['-c', filled(RECOGNIZE, values)], { cwd: dir })
  t.match(JSON.parse(recognized.stdout), {
    result_index: 0,
    results: [{ final: true, alternatives: [{ transcript: /0\.50 s of audio/ }] }],
    audio_metrics: { accumulated: { sample_rate: 16000, channels: 1 } }
  }, 'the FLAC upload is recognized (its length read from the FLAC header)')
  t.equal(filesUnder(join(dir, 'data', 'files')).length, 1, 'the recognition stored its audio')

  const deleted = await sh('sh', ['-c', filled(DELETE, values)], { cwd: dir })
  t.match(JSON.parse(deleted.stdout), { status: 'completed', erased: { recognition: 1 } })
  t.same(filesUnder(join(dir, 'data', 'files')), [], 'the audio is erased')
})

test('the routes are also served under /speech-to-text/api/instances/:instance_id', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-seed-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const server = await startExample({ DATA_DIR: dir, STT_API_KEYS: 'k:inst' })
  t.teardown(() => killExample(server))
  const auth = { authorization: 'Basic ' + Buffer.from('apikey:k').toString('base64') }
  const res = await fetch(`${server.url}/speech-to-text/api/instances/inst/v1/recognize`, {
    method: 'POST', body: flac(0.25), headers: { ...auth, 'content-type': 'audio/flac', 'x-watson-metadata': 'customer_id=c' }
  })
  t.equal(res.status, 200)
  const del = await fetch(`${server.url}/speech-to-text/api/instances/inst/v1/user_data?customer_id=c`, { method: 'DELETE', headers: auth })
  t.match(await del.json(), { status: 'completed', erased: { recognition: 1 } })
})
