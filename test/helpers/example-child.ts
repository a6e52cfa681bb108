// The example server in a child process with a data folder of its own, for tests that watch what it
// prints and how much memory it takes (started by helpers/example-process.ts, as `npm run example`).
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killExample, startExample } from './example-process.js'

export interface ExampleChild { proc: ChildProcess, base: string, output: () => string, peakRssKb: () => number, stop: () => Promise<void> }

export async function startExampleChild (env: Record<string, string>): Promise<ExampleChild> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-example-child-'))
  const child = await startExample({ HOST: '127.0.0.1', DATA_DIR: dataDir, ...env })
  return {
    proc: child.proc,
    base: child.url,
    output: child.output,
    /** The child's peak resident memory so far (VmHWM), in KiB. */
    peakRssKb: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.proc.pid as number}/status`, 'utf8'))?.[1]),
    stop: async () => {
      await killExample(child, 'SIGTERM')
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}
