// Runs code as `node --input-type=module -e <code>`, the way a host started as an ES module runs:
// what it printed, and how it exited (killed after `timeoutMs`).
import { spawn } from 'node:child_process'

export async function runModuleScript (code: string, timeoutMs = 20_000): Promise<{ out: string, exitCode: number | null }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += String(c) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (c) => { resolve(c) }))
  clearTimeout(timer)
  return { out: out.trim(), exitCode }
}
