// The README's quick start runs exactly as printed (issue: "Quick start that runs as pasted").
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

test('the quick start block runs as pasted and erases what it labeled', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Quick start'))
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1]
  t.ok(code !== undefined && code.includes("from 'fastify-customer-data'"), 'found the quick start code')
  // Inside the package, so the package name resolves to this build, as it would from node_modules.
  const dir = mkdtempSync(join(root, 'test', '.quickstart-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'quickstart.mjs'), code as string)
  const child = spawn(process.execPath, ['quickstart.mjs'], { cwd: dir, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const base = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (c) => {
      out += c
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m !== null) resolve(m[1])
    })
    let err = ''
    child.stderr.on('data', (c) => { err += c })
    child.on('exit', (code) => { reject(new Error(`quick start exited ${code}: ${err}`)) })
  })
  const auth = { authorization: 'Basic ' + Buffer.from('apikey:my-api-key').toString('base64') }
  const put = await fetch(`${base}/v1/words/hello`, { method: 'PUT', headers: { ...auth, 'x-watson-metadata': 'customer_id=my_ID' } })
  t.equal(put.status, 201)
  t.equal(readFileSync(join(dir, 'words', 'instance-1', 'hello'), 'utf8'), 'stored', 'the route stored its file')
  const exported = await (await fetch(`${base}/v1/user_data?customer_id=my_ID`, { headers: auth })).json() as { resources: Array<{ kind: string, id: string }> }
  t.match(exported.resources, [{ kind: 'word', id: 'hello' }])
  const del = await (await fetch(`${base}/v1/user_data?customer_id=my_ID`, { method: 'DELETE', headers: auth })).json()
  t.match(del, { status: 'completed', erased: { word: 1 } })
  t.throws(() => readFileSync(join(dir, 'words', 'instance-1', 'hello')), 'the stored file is gone')
})
