// The store factories check their options with the same checkers as the plugins (lib/options.ts),
// once, when the store is created (docs/ARCHITECTURE.md, "Options").
export { checkInteger, checkKnownKeys } from '../options.js'
