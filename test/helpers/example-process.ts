// Runs the example server (dist/examples/server.js, as `npm run example` does) as a real child process.
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolvePath(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const EXAMPLE_SERVER = resolvePath(root, 'dist', 'examples', 'server.js')

export interface ExampleProcess { proc: ChildProcess, url: string, exited: Promise<number | null>, output: () => string }
export interface ExampleExit { code: number | null, stdout: string, stderr: string }

function spawnExample (env: Record<string, string>): { proc: ChildProcess, stdout: () => string, stderr: () => string, exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [EXAMPLE_SERVER], { env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout?.on('data', (c) => { out += c })
  proc.stderr?.on('data', (c) => { err += c })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => { resolve(code) }))
  return { proc, stdout: () => out, stderr: () => err, exited }
}

/** Starts the example and resolves when it prints `listening on http://…`. */
export async function startExample (env: Record<string, string>): Promise<ExampleProcess> {
  const child = spawnExample(env)
  return await new Promise((resolve, reject) => {
    child.proc.stdout?.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(child.stdout())
      if (m !== null) resolve({ proc: child.proc, url: m[1], exited: child.exited, output: () => child.stdout() + child.stderr() })
    })
    child.proc.on('exit', (code) => { reject(new Error(`the example exited (${code}) before listening: ${child.stderr().slice(-2000)}`)) })
  })
}

/** Runs the example until it exits on its own (a bad setting) and returns what it printed. */
export async function runExampleToExit (env: Record<string, string>): Promise<ExampleExit> {
  const child = spawnExample(env)
  const code = await child.exited
  return { code, stdout: child.stdout(), stderr: child.stderr() }
}

export async function killExample (child: ExampleProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return
  child.proc.kill(signal)
  await child.exited
}
