// The example server as `npm run example` runs it (dist/examples/server.js), in a child process,
// with everything it prints collected.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const SERVER = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'examples', 'server.js')

export interface ExampleChild { proc: ChildProcess, base: string, output: () => string, peakRssKb: () => number, stop: () => Promise<void> }

async function freePort (): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as { port: number }).port
  await new Promise((resolve) => probe.close(resolve))
  return port
}

export async function startExampleChild (env: Record<string, string>): Promise<ExampleChild> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-example-child-'))
  const port = await freePort()
  const proc = spawn(process.execPath, [SERVER], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  proc.stdout?.on('data', (c) => { out += c })
  proc.stderr?.on('data', (c) => { out += c })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    const check = (): void => { if (out.includes(`listening on http://127.0.0.1:${port}`)) resolve() }
    proc.stdout?.on('data', check)
    proc.once('exit', (code) => reject(new Error(`the example exited (${code}) before listening: ${out.slice(-2000)}`)))
  })
  return {
    proc,
    base: `http://127.0.0.1:${port}`,
    output: () => out,
    /** The child's peak resident memory so far (VmHWM), in KiB. */
    peakRssKb: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid as number}/status`, 'utf8'))?.[1]),
    stop: async () => {
      proc.kill('SIGTERM')
      await exited
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}
