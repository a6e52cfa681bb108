// The example's only outbound calls: the register_callback challenge and job notifications, made
// to URLs a client chose. Each is bounded: a URL length checked before any call, a 5 s deadline
// (Watson's), a capped reply, and no redirects, so a signed request never lands where the client
// did not register (README, "Example server").
import { createHmac, randomBytes } from 'node:crypto'
import { HttpError } from './http.js'

/** Watson refuses callback URLs longer than this; checked before the URL is ever called. */
export const MAX_CALLBACK_URL_CHARS = 1024
/** Watson's deadline for the challenge reply and for each notification. */
export const CALLBACK_TIMEOUT_MS = 5000
/** The challenge is 32 characters; a reply beyond this is not an echo and is not read further. */
export const MAX_CHALLENGE_REPLY_BYTES = 1024

/** The callback URL, checked for length and scheme without calling it. */
export function callbackUrl (value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new HttpError(400, 'Missing required parameter "callback_url".')
  if (value.length > MAX_CALLBACK_URL_CHARS) throw new HttpError(400, `callback_url is longer than ${MAX_CALLBACK_URL_CHARS} characters.`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new HttpError(400, 'callback_url must be an absolute http or https URL.')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HttpError(400, 'callback_url must be an absolute http or https URL.')
  return url.toString()
}

function signature (secret: string | undefined, payload: string): Record<string, string> {
  return secret === undefined ? {} : { 'X-Callback-Signature': createHmac('sha256', secret).update(payload).digest('base64') }
}

/** Reads at most `cap` bytes of the reply; null (and the connection aborted) past it. */
async function readCapped (res: Response, cap: number, abort: AbortController): Promise<string | null> {
  if (res.body === null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of res.body) {
    size += chunk.length
    if (size > cap) {
      abort.abort()
      return null
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** GET url?challenge_string=…; true when the reply (2xx, not a redirect) echoes the challenge in time. */
export async function answersChallenge (url: string, secret: string | undefined): Promise<boolean> {
  const challenge = randomBytes(16).toString('hex')
  const target = new URL(url)
  target.searchParams.set('challenge_string', challenge)
  const abort = new AbortController()
  const timer = setTimeout(() => { abort.abort() }, CALLBACK_TIMEOUT_MS)
  try {
    const res = await fetch(target, { headers: { Accept: 'text/plain', ...signature(secret, challenge) }, redirect: 'manual', signal: abort.signal })
    if (res.status < 200 || res.status >= 300) {
      abort.abort()
      return false
    }
    return (await readCapped(res, MAX_CHALLENGE_REPLY_BYTES, abort))?.trim() === challenge
  } catch {
    return false
  } finally {
    clearTimeout(timer)
  }
}

/** POSTs a signed notification; true on a 2xx. A redirect is a failure, never followed. */
export async function postNotification (url: string, body: string, secret: string | undefined): Promise<boolean> {
  const abort = new AbortController()
  const timer = setTimeout(() => { abort.abort() }, CALLBACK_TIMEOUT_MS)
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...signature(secret, body) },
      body,
      redirect: 'manual',
      signal: abort.signal
    })
    abort.abort() // the reply's body is not needed: free the connection
    return res.status >= 200 && res.status < 300
  } catch {
    return false
  } finally {
    clearTimeout(timer)
  }
}
