// Sessions of the operators' console (docs/ARCHITECTURE.md, Operations): random ids kept on the
// server with an expiry, each bound to one instance and carrying its own CSRF token. Only a hash
// of a session id is kept, so the map never holds a usable cookie value.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

export interface ConsoleSession {
  instance: string
  /** Sent back by the page in a header on every state-changing call. */
  csrf: string
  /** Idle expiry (epoch ms), pushed back on each use. */
  expiresAt: number
  /** No session outlives this, used or not (epoch ms). */
  endsAt: number
}

export interface ConsoleSessionsOptions {
  /** A session unused for this long ends. */
  idleMs: number
  /** A session ends this long after sign-in, however busy. */
  maxAgeMs: number
  /** Most live sessions; past it the oldest ends first. */
  max: number
}

/** 256 bits: guessing a live id is hopeless. */
const ID_BYTES = 32

function digest (id: string): string {
  return createHash('sha256').update(id).digest('base64url')
}

export class ConsoleSessions {
  readonly #sessions = new Map<string, ConsoleSession>()
  readonly #options: ConsoleSessionsOptions

  constructor (options: ConsoleSessionsOptions) {
    this.#options = options
  }

  get size (): number { return this.#sessions.size }

  /** Starts a session for the instance; returns the id for the cookie (never stored as is). */
  create (instance: string, now: number): { id: string, session: ConsoleSession } {
    this.#makeRoom(now)
    const id = randomBytes(ID_BYTES).toString('base64url')
    const session: ConsoleSession = {
      instance,
      csrf: randomBytes(ID_BYTES).toString('base64url'),
      expiresAt: now + this.#options.idleMs,
      endsAt: now + this.#options.maxAgeMs
    }
    this.#sessions.set(digest(id), session)
    return { id, session }
  }

  /** The live session with this id (its idle expiry pushed back), or null. */
  get (id: string | undefined, now: number): ConsoleSession | null {
    if (id === undefined || id.length === 0 || id.length > 128) return null
    const key = digest(id)
    const session = this.#sessions.get(key)
    if (session === undefined) return null
    if (session.expiresAt <= now || session.endsAt <= now) {
      this.#sessions.delete(key)
      return null
    }
    session.expiresAt = Math.min(now + this.#options.idleMs, session.endsAt)
    return session
  }

  end (id: string | undefined): void {
    if (id !== undefined) this.#sessions.delete(digest(id))
  }

  /** Whether `token` is the session's CSRF token, compared in constant time. */
  static csrfMatches (session: ConsoleSession, token: unknown): boolean {
    if (typeof token !== 'string') return false
    const a = Buffer.from(session.csrf)
    const b = Buffer.from(token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  #makeRoom (now: number): void {
    if (this.#sessions.size < this.#options.max) return
    for (const [key, s] of this.#sessions) {
      if (s.expiresAt <= now || s.endsAt <= now) this.#sessions.delete(key)
    }
    // Still full: the oldest sign-in (first in insertion order) ends.
    while (this.#sessions.size >= this.#options.max) {
      this.#sessions.delete(this.#sessions.keys().next().value as string)
    }
  }
}
