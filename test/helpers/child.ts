// Starts the fixture server as a real child process (from the built package in dist/).
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolvePath(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const FIXTURE = resolvePath(root, 'dist', 'test', 'fixtures', 'crash-server.js')

export interface Child { proc: ChildProcess, port: number, url: string, exited: Promise<number | null> }

export function startChild (env: Record<string, string>): Promise<Child> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => { resolve(code) }))
    proc.stdout?.on('data', (c) => {
      out += c
      const m = /listening (\d+)/.exec(out)
      if (m !== null) resolve({ proc, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}`, exited })
    })
    proc.stderr?.on('data', (c) => { err += c })
    proc.on('exit', (code) => { reject(new Error(`child exited (${code}) before listening: ${err.slice(-2000)}`)) })
  })
}

export async function kill (child: Child): Promise<void> {
  child.proc.kill('SIGKILL')
  await child.exited
}
