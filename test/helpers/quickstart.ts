// Runs a README quick start as a host would (a child process in its own folder) and drives it:
// store a word for a customer, find it in the export, delete the customer, see the file gone.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'

/** The first fenced block of `lang` after `heading` in the README. */
export function readmeBlock (readme: string, heading: string, lang: string): string {
  const at = readme.indexOf(heading)
  if (at === -1) throw new Error(`README has no "${heading}"`)
  const code = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(readme.slice(at))?.[1]
  if (code === undefined) throw new Error(`README's "${heading}" has no ${lang} block`)
  return code
}

/** Starts `node file` in `dir` and resolves with the URL it prints as "listening on …". */
export async function startQuickstart (t: Test, dir: string, file: string, env: Record<string, string> = {}): Promise<string> {
  const child = spawn(process.execPath, [file], { cwd: dir, env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  return await new Promise<string>((resolve, reject) => {
    let out = ''
    let err = ''
    child.stdout.on('data', (c) => {
      out += c
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m !== null) resolve(m[1])
    })
    child.stderr.on('data', (c) => { err += c })
    child.on('exit', (code) => { reject(new Error(`${file} exited ${code}: ${err}`)) })
  })
}

/** What the README promises of its quick start, checked over HTTP and on disk. */
export async function driveQuickstart (t: Test, base: string, dir: string): Promise<void> {
  const auth = { authorization: 'Basic ' + Buffer.from('apikey:my-api-key').toString('base64') }
  const put = await fetch(`${base}/v1/words/hello`, { method: 'PUT', headers: { ...auth, 'x-watson-metadata': 'customer_id=my_ID' } })
  t.equal(put.status, 201)
  t.equal(readFileSync(join(dir, 'words', 'instance-1', 'hello'), 'utf8'), 'stored', 'the route stored its file')
  const exported = await (await fetch(`${base}/v1/user_data?customer_id=my_ID`, { headers: auth })).json() as { resources: Array<{ kind: string, id: string }> }
  t.match(exported.resources, [{ kind: 'word', id: 'hello' }])
  const del = await (await fetch(`${base}/v1/user_data?customer_id=my_ID`, { method: 'DELETE', headers: auth })).json()
  t.match(del, { status: 'completed', erased: { word: 1 } })
  t.throws(() => readFileSync(join(dir, 'words', 'instance-1', 'hello')), 'the stored file is gone')
}
