// Coverage counts the library (index.ts, lib/, plugins/), not tests, examples or benchmarks.
import { readdirSync } from 'node:fs'

const library = ['index.ts', ...['lib', 'plugins'].flatMap((dir) =>
  readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`))]

export default () => library
