// The example server on a real port, in this process, with its own DATA_DIR.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../../examples/app.js'
import type { Limits } from '../../examples/http.js'

export const KEY = 'example-key'
export const INSTANCE = 'inst'
export const AUTH = { authorization: 'Basic ' + Buffer.from(`apikey:${KEY}`).toString('base64') }

export interface Example { app: FastifyInstance, base: string, port: number, dataDir: string }

export async function startExample (t: { teardown: (fn: () => unknown) => void }, limits: Partial<Limits> = {}): Promise<Example> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-example-'))
  const app = await buildServer({ dataDir, apiKeys: { [KEY]: INSTANCE, 'other-key': 'other' }, limits, customerData: { waitMs: 3000 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close(); rmSync(dataDir, { recursive: true, force: true }) })
  const port = (app.server.address() as { port: number }).port
  return { app, base: `http://127.0.0.1:${port}`, port, dataDir }
}

/** Every file under DATA_DIR/files (audio, corpora, grammars, results). */
export function storedFiles (dataDir: string): string[] {
  const root = join(dataDir, 'files')
  try {
    return readdirSync(root, { recursive: true }).map(String).filter((f) => statSync(join(root, f)).isFile())
  } catch {
    return []
  }
}

export async function until (what: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
