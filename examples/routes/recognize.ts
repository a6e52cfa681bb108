// POST /v1/recognize (raw audio or multipart) and the WebSocket /v1/recognize session, each
// labeled as a `recognition` resource: the audio file and its result document.
import { randomUUID } from 'node:crypto'
import { PassThrough } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { errors } from 'fastify-customer-data'
import { HttpError, contentTypeOf, instanceOf, type Host } from '../http.js'
import { UnsupportedAudio, type RecognitionResult } from '../recognizer.js'
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
    if (err instanceof UnsupportedAudio) throw new HttpError(415, err.message)
    throw err
  }
}

/** Streams the request's audio (raw body, or the multipart `upload` parts) into the file. */
async function receiveAudio (host: Host, request: FastifyRequest, instance: string, id: string): Promise<{ contentType: string, bytes: number }> {
  if (!request.isMultipart()) {
    const bytes = await host.files.write(instance, KIND, id, request.body as NodeJS.ReadableStream as never, host.limits.recognizeBytes)
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
    throw err
  }
  return { contentType: contentType ?? 'application/octet-stream', bytes: await writing }
}

export function recognizeRoutes (app: FastifyInstance, host: Host): void {
  app.post('/v1/recognize', async (request) => {
    const instance = instanceOf(request)
    const id = randomUUID()
    return await request.customerData.store(KIND, id, async () => {
      const { contentType, bytes } = await receiveAudio(host, request, instance, id)
      if (bytes === 0) {
        await host.files.remove(instance, KIND, [id])
        throw new HttpError(400, 'No audio was sent: send the audio as the request body.')
      }
      return await recognizeStored(host, instance, id, contentType)
    })
  })

  app.get('/v1/recognize', { websocket: true }, (socket, request) => {
    recognitionSession(host, socket, request)
  })
}

/** One WebSocket session (WATSON-WIRE.md): start → listening → audio → stop → results → listening. */
function recognitionSession (host: Host, socket: WebSocket, request: FastifyRequest): void {
  const instance = instanceOf(request)
  const id = randomUUID()
  let contentType: string | null = null
  let audio: PassThrough | null = null
  let writing: Promise<number> | null = null
  let received = 0
  let closed = false
  // Write-ahead: the label is durable before the first audio byte is stored.
  const leased = request.customerData.label(KIND, id)
  let chain: Promise<unknown> = leased.then((lease) => {
    lease.keepAlive()
    lease.signal.addEventListener('abort', () => { fail(1011, "The customer's data was deleted during this session; what it stored has been erased.") })
  })

  function send (message: object): void {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message))
  }

  function fail (code: number, message: string): void {
    if (closed) return
    send({ error: message })
    closed = true
    socket.close(code)
  }

  async function finish (): Promise<void> {
    if (audio === null || writing === null) return
    audio.end()
    const bytes = await writing
    audio = null
    writing = null
    if (bytes === 0) {
      send({ results: [], result_index: 0 })
    } else {
      const result = await recognizeStored(host, instance, id, contentType ?? 'application/octet-stream')
      send(result)
    }
    send({ state: 'listening' })
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
        contentType = message['content-type'] ?? contentType ?? 'application/octet-stream'
        audio = new PassThrough()
        writing = host.files.write(instance, KIND, id, audio, host.limits.recognizeBytes)
        writing.catch(() => {})
        send({ state: 'listening' })
      } else if (message.action === 'stop') {
        await finish()
      } else {
        fail(1002, 'Unknown action: send {"action": "start"} or {"action": "stop"}.')
      }
      return
    }
    if (data.length === 0) { await finish(); return }
    if (audio === null) { fail(1002, 'Send {"action": "start", "content-type": …} before audio.'); return }
    received += data.length
    if (received > host.limits.recognizeBytes) { fail(1009, `The session sent more than ${host.limits.recognizeBytes} bytes of audio.`); return }
    audio.write(data)
  }

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    chain = chain.then(() => onMessage(data, isBinary)).catch((err) => {
      fail(err instanceof HttpError ? 1002 : 1011, err instanceof HttpError ? err.message : 'The recognition failed.')
    })
  })
  socket.on('close', () => {
    closed = true
    chain = chain.then(async () => {
      audio?.end()
      await writing?.catch(() => {})
      await (await leased).commit()
    }).catch((err) => {
      if (!(err instanceof errors.FST_CUSTOMER_DATA_LEASE_DOOMED)) request.log.warn({ err }, 'recognition session ended with an error')
    })
  })
  leased.catch(() => { fail(1011, 'The session could not be labeled; retry later.') })
}
