// The README's quick start runs exactly as printed, inside the repository (fast); the same block
// also runs against the packed and installed package in test/pack-install.test.ts.
import { test } from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { driveQuickstart, readmeBlock, startQuickstart } from './helpers/quickstart.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

test('the quick start block runs as pasted and erases what it labeled', async (t) => {
  const code = readmeBlock(readFileSync(join(root, 'README.md'), 'utf8'), '## Quick start', 'js')
  t.ok(code.includes("from 'fastify-customer-data'"), 'found the quick start code')
  // Inside the package, so the package name resolves to this build, as it would from node_modules.
  const dir = mkdtempSync(join(root, 'test', '.quickstart-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'quickstart.mjs'), code)
  await driveQuickstart(t, await startQuickstart(t, dir, 'quickstart.mjs'), dir)
})
