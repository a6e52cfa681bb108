// POST /v1/recognize (raw audio or multipart) and the WebSocket /v1/recognize session, each
// labeled as a `recognition` resource: the audio file and its result document.
import { randomUUID } from 'node:crypto'
import { PassThrough } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { errors, type Lease } from 'fastify-customer-data'
import { HttpError, bodyOf, contentTypeOf, instanceOf, malformedMultipart, type Host } from '../http.js'
import { MalformedAudio, UnsupportedAudio, type RecognitionResult } from '../recognizer.js'
import { BodyTooLarge } from '../storage/blobs.js'

const KIND = 'recognition'

async function recognizeStored (host: Host, instance: string, id: string, contentType: string): Promise<RecognitionResult> {
  try {
    const audio = await host.files.open(instance, KIND, id)
    if (audio === null) throw new Error('The stored audio is gone.')
    const result = await host.recognizer.recognize(audio, contentType)
    await host.docs.put(instance, KIND, id, { id, created: new Date().toISOString(), content_type: contentType, result })
    return result
  } catch (err) {
    await host.files.remove(instance, KIND, [id]) // nothing left behind by a failed recognition
    if (err instanceof MalformedAudio) throw new HttpError(400, err.message)
    if (err instanceof UnsupportedAudio) throw new HttpError(415, err.message)
    throw err
  }
}

/** Streams the request's audio (raw body, or the multipart `upload` parts) into the file. */
async function receiveAudio (host: Host, request: FastifyRequest, instance: string, id: string): Promise<{ contentType: string, bytes: number }> {
  if (!request.isMultipart()) {
    const bytes = await host.files.write(instance, KIND, id, bodyOf(request), host.limits.recognizeBytes)
    return { contentType: contentTypeOf(request), bytes }
  }
  let contentType: string | undefined
  const joined = new PassThrough()
  joined.on('error', () => {}) // its consumer (the file write) reports the failure
  const writing = host.files.write(instance, KIND, id, joined, host.limits.recognizeBytes)
  writing.catch(() => {})
  try {
    for await (const part of request.parts()) {
      if (part.type === 'field') {
        if (part.fieldname === 'metadata') {
          try {
            contentType = (JSON.parse(String(part.value)) as { part_content_type?: string }).part_content_type ?? contentType
          } catch {
            throw new HttpError(400, 'The multipart "metadata" part is not valid JSON.')
          }
        }
        continue
      }
      contentType ??= part.mimetype
      for await (const chunk of part.file) {
        if (!joined.write(chunk)) await new Promise((resolve) => joined.once('drain', resolve))
      }
      if (part.file.truncated) throw new BodyTooLarge(host.limits.recognizeBytes)
    }
    joined.end()
  } catch (err) {
    joined.destroy(err as Error)
    await writing.catch(() => {})
    throw malformedMultipart(err)
  }
  return { contentType: contentType ?? 'application/octet-stream', bytes: await writing }
}

/** The id of the recognition a request stores: made once, read by the labeling hook and the handler. */
const recognitionIds = new WeakMap<FastifyRequest, string>()
function recognitionId (request: FastifyRequest): string {
  let id = recognitionIds.get(request)
  if (id === undefined) recognitionIds.set(request, id = randomUUID())
  return id
}

export function recognizeRoutes (app: FastifyInstance, host: Host): void {
  app.post('/v1/recognize', { config: { customerData: { kind: KIND, id: recognitionId } } }, async (request) => {
    const instance = instanceOf(request)
    const id = recognitionId(request)
    const { contentType, bytes } = await receiveAudio(host, request, instance, id)
    if (bytes === 0) {
      await host.files.remove(instance, KIND, [id])
      throw new HttpError(400, 'No audio was sent: send the audio as the request body.')
    }
    return await recognizeStored(host, instance, id, contentType)
  })

  app.get('/v1/recognize', { websocket: true }, (socket, request) => {
    recognitionSession(host, socket, request)
  })
}

/**
 * One WebSocket session: start → listening → audio → stop → results → listening, as many times as
 * the client likes; each recognition is its own labeled resource. A second start while one is
 * active breaks that order, so it is a protocol error (an error frame, then close 1002) rather than
 * a new file opened beside the first. A recognition that ends without a result (the client left,
 * sent too much, or was deleted) leaves nothing behind, labeled or not.
 */
function recognitionSession (host: Host, socket: WebSocket, request: FastifyRequest): void {
  const instance = instanceOf(request)
  let active: Recognition | null = null
  let closed = false
  let chain: Promise<unknown> = Promise.resolve()

  interface Recognition { id: string, contentType: string, lease: Lease, audio: PassThrough, writing: Promise<number>, received: number }

  function send (message: object): void {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message))
  }

  function fail (code: number, message: string): void {
    if (closed) return
    send({ error: message })
    closed = true
    socket.close(code)
  }

  async function start (contentType: string): Promise<void> {
    const id = randomUUID()
    // Write-ahead: the label is durable before the first audio byte is stored.
    const lease = await request.customerData.label(KIND, id)
    lease.keepAlive()
    lease.signal.addEventListener('abort', () => { fail(1011, "The customer's data was deleted during this session; what it stored has been erased.") })
    const audio = new PassThrough()
    const writing = host.files.write(instance, KIND, id, audio, host.limits.recognizeBytes)
    writing.catch(() => {})
    active = { id, contentType, lease, audio, writing, received: 0 }
    send({ state: 'listening' })
  }

  async function finish (): Promise<void> {
    const recognition = active
    if (recognition === null) return
    active = null
    recognition.audio.end()
    const bytes = await recognition.writing
    if (bytes === 0) {
      await host.files.remove(instance, KIND, [recognition.id])
      await recognition.lease.cancel() // nothing was kept
      send({ results: [], result_index: 0 })
    } else {
      let result: RecognitionResult
      try {
        result = await recognizeStored(host, instance, recognition.id, recognition.contentType)
      } catch (err) {
        await recognition.lease.cancel() // recognizeStored removed the audio
        throw err
      }
      await recognition.lease.commit()
      send(result)
    }
    send({ state: 'listening' })
  }

  /** The session ended mid-recognition: stop writing, remove what was written, end the lease. */
  async function abandon (): Promise<void> {
    const recognition = active
    if (recognition === null) return
    active = null
    recognition.audio.destroy()
    await recognition.writing.catch(() => {})
    await host.files.remove(instance, KIND, [recognition.id])
    // A deletion doomed the lease: commit() erases and reports it; otherwise nothing is kept.
    if (recognition.lease.signal.aborted) await recognition.lease.commit()
    else await recognition.lease.cancel()
  }

  async function onMessage (data: Buffer, isBinary: boolean): Promise<void> {
    if (closed) return
    if (!isBinary) {
      let message: { action?: string, 'content-type'?: string }
      try {
        message = JSON.parse(data.toString('utf8'))
      } catch {
        fail(1002, 'Text frames must be JSON messages such as {"action": "start"}.')
        return
      }
      if (message.action === 'start') {
        if (active !== null) { fail(1002, 'A recognition is already in progress: send {"action": "stop"} and wait for its results before the next start.'); return }
        await start(message['content-type'] ?? 'application/octet-stream')
      } else if (message.action === 'stop') {
        await finish()
      } else {
        fail(1002, 'Unknown action: send {"action": "start"} or {"action": "stop"}.')
      }
      return
    }
    if (data.length === 0) { await finish(); return }
    if (active === null) { fail(1002, 'Send {"action": "start", "content-type": …} before audio.'); return }
    active.received += data.length
    if (active.received > host.limits.recognizeBytes) { fail(1009, `The session sent more than ${host.limits.recognizeBytes} bytes of audio.`); return }
    active.audio.write(data)
  }

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    chain = chain.then(() => onMessage(data, isBinary)).catch((err) => {
      if (err instanceof errors.FST_CUSTOMER_DATA_LEASE_DOOMED) return // fail() has told the client
      fail(err instanceof HttpError ? 1002 : 1011, err instanceof HttpError ? err.message : 'The recognition failed; retry later.')
    })
  })
  socket.on('close', () => {
    closed = true
    chain = chain.then(abandon).catch((err) => {
      if (!(err instanceof errors.FST_CUSTOMER_DATA_LEASE_DOOMED)) request.log.warn({ err }, 'recognition session ended with an error')
    })
  })
}
