// Custom language models (corpora, words, grammars) and custom acoustic models (audio). The models
// themselves are not labeled; what a customer adds to them is (WATSON-WIRE.md, Labeled methods).
import { randomUUID } from 'node:crypto'
import { pipeline, type Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteCustomerDataConfig } from 'fastify-customer-data'
import { WordCounter } from '../corpus-words.js'
import {
  HttpError, MAX_NAME_CHARS, bodyOf, contentTypeOf, instanceOf, malformedMultipart, notFound, nowIso, optionalString, readJson, requireString,
  resourceName, type Host
} from '../http.js'
import { describeAudio } from '../recognizer.js'

type ModelKind = 'language_model' | 'acoustic_model'
const GRAMMAR_TYPES = ['application/srgs', 'application/srgs+xml']
const ARCHIVE_TYPES = ['application/zip', 'application/gzip']

/**
 * Declarative labeling of a route that writes one child of a model, whose id is
 * "<customization_id>/<name>": a write replaces the child (other customers' labels on it are
 * withdrawn when it commits); a delete withdraws every label of it once it is gone.
 */
function childConfig (kind: string, param: string, action: 'replace' | 'withdraw'): { customerData: RouteCustomerDataConfig } {
  return {
    customerData: {
      kind,
      id: (request) => {
        const params = request.params as Record<string, string>
        return `${params.customization_id}/${params[param]}`
      },
      [action]: true
    }
  }
}

/** A word's document from a request entry; throws the 400 that names what is wrong with it. */
function wordDoc (entry: unknown): { word: string, sounds_like: string[], display_as: string, count: number, source: string[] } {
  if (entry === null || typeof entry !== 'object') throw new HttpError(400, 'Each entry of "words" must be an object.')
  const { word: name, sounds_like: soundsLike = [], display_as: displayAs } = entry as Record<string, unknown>
  const word = resourceName(requireString(name, 'word', MAX_NAME_CHARS), 'word')
  if (!Array.isArray(soundsLike) || soundsLike.some((s) => typeof s !== 'string') || soundsLike.length > 5) {
    throw new HttpError(400, `sounds_like of "${word}" must be an array of at most 5 strings.`)
  }
  return { word, sounds_like: soundsLike, display_as: optionalString(displayAs, 'display_as', MAX_NAME_CHARS) ?? word, count: 1, source: ['user'] }
}

export function customModelRoutes (app: FastifyInstance, host: Host): void {
  const { docs, files, limits } = host

  async function model (request: FastifyRequest, kind: ModelKind): Promise<Record<string, unknown>> {
    const id = (request.params as { customization_id: string }).customization_id
    const found = await docs.get(instanceOf(request), kind, id)
    if (found === null) throw notFound(`The custom ${kind === 'language_model' ? 'language' : 'acoustic'} model`)
    return found
  }

  function modelRoutes (path: string, kind: ModelKind): void {
    app.post(path, async (request, reply) => {
      const body = await readJson(request, limits.jsonBytes)
      const name = requireString(body.name, 'name', 256)
      const base = requireString(body.base_model_name, 'base_model_name', 256)
      const id = randomUUID()
      await docs.put(instanceOf(request), kind, id, {
        customization_id: id,
        created: nowIso(),
        updated: nowIso(),
        language: base.split('_')[0],
        owner: instanceOf(request),
        name,
        description: optionalString(body.description, 'description', 1024) ?? '',
        base_model_name: base,
        status: 'pending',
        progress: 0
      })
      return reply.code(201).send({ customization_id: id })
    })
    app.get(path, async (request) => ({ customizations: await docs.list(instanceOf(request), kind) }))
    app.get(`${path}/:customization_id`, async (request) => await model(request, kind))
    app.delete(`${path}/:customization_id`, async (request) => {
      const found = await model(request, kind)
      const instance = instanceOf(request)
      const id = found.customization_id as string
      for (const child of kind === 'language_model' ? ['corpus', 'word', 'grammar'] : ['audio']) {
        const ids = (await docs.list(instance, child, `${id}/`)).map((d) => `${id}/${d.name as string ?? d.word as string}`)
        await docs.delete(instance, child, ids)
        await files.remove(instance, child, ids)
        if (ids.length > 0) await request.customerData.withdraw(child, ids)
      }
      await docs.delete(instance, kind, [id])
      return {}
    })
    for (const action of ['train', 'reset', 'upgrade_model']) {
      app.post(`${path}/:customization_id/${action}`, async (request) => {
        const found = await model(request, kind)
        const status = action === 'reset' ? 'pending' : 'available'
        await docs.put(instanceOf(request), kind, found.customization_id as string, { ...found, status, progress: status === 'available' ? 100 : 0, updated: nowIso() })
        return {}
      })
    }
  }

  modelRoutes('/v1/customizations', 'language_model')
  modelRoutes('/v1/acoustic_customizations', 'acoustic_model')

  /** GET list, GET one and DELETE for a model's resources of one kind. */
  function childRoutes (path: string, modelKind: ModelKind, kind: string, listKey: string, param: string, decorate: (docs: Record<string, unknown>[]) => Record<string, unknown> = (d) => ({ [listKey]: d })): void {
    app.get(path, async (request) => {
      const m = await model(request, modelKind)
      return decorate(await docs.list(instanceOf(request), kind, `${m.customization_id as string}/`))
    })
    app.get(`${path}/:${param}`, async (request) => {
      const m = await model(request, modelKind)
      const found = await docs.get(instanceOf(request), kind, `${m.customization_id as string}/${(request.params as Record<string, string>)[param]}`)
      if (found === null) throw notFound(`The ${kind}`)
      return found
    })
    app.delete(`${path}/:${param}`, { config: childConfig(kind, param, 'withdraw') }, async (request) => {
      const m = await model(request, modelKind)
      const id = `${m.customization_id as string}/${(request.params as Record<string, string>)[param]}`
      if (await docs.get(instanceOf(request), kind, id) === null) throw notFound(`The ${kind}`)
      await docs.delete(instanceOf(request), kind, [id])
      await files.remove(instanceOf(request), kind, [id])
      return {}
    })
  }

  // Corpora: multipart `corpus_file` (the SDK) or the raw text (curl), its words counted as it streams.
  app.post('/v1/customizations/:customization_id/corpora/:corpus_name', { config: childConfig('corpus', 'corpus_name', 'replace') }, async (request, reply) => {
    const m = await model(request, 'language_model')
    const instance = instanceOf(request)
    const name = resourceName((request.params as { corpus_name: string }).corpus_name, 'corpus')
    const id = `${m.customization_id as string}/${name}`
    const overwrite = (request.query as { allow_overwrite?: string }).allow_overwrite === 'true'
    if (!overwrite && await docs.get(instance, 'corpus', id) !== null) {
      throw new HttpError(400, `Corpus "${name}" already exists; send allow_overwrite=true to replace it.`)
    }
    const words = new WordCounter()
    const counted = (source: Readable): Readable => pipeline(source, words, () => {})
    if (request.isMultipart()) {
      const part = await request.file({ limits: { fileSize: limits.resourceBytes, files: 1 } }).catch((err: unknown) => { throw malformedMultipart(err) })
      if (part === undefined || part.fieldname !== 'corpus_file') throw new HttpError(400, 'Send the corpus as the multipart part "corpus_file".')
      await files.write(instance, 'corpus', id, counted(part.file), limits.resourceBytes).catch((err: unknown) => { throw malformedMultipart(err) })
      if (part.file.truncated) throw new HttpError(413, `The corpus is larger than ${limits.resourceBytes} bytes.`)
    } else {
      await files.write(instance, 'corpus', id, counted(bodyOf(request)), limits.resourceBytes)
    }
    await docs.put(instance, 'corpus', id, { name, total_words: words.total, out_of_vocabulary_words: words.distinct.size, status: 'analyzed' })
    return reply.code(201).send({})
  })
  childRoutes('/v1/customizations/:customization_id/corpora', 'language_model', 'corpus', 'corpora', 'corpus_name')

  // Words: POST many (all checked before any is stored), PUT one.
  app.post('/v1/customizations/:customization_id/words', async (request, reply) => {
    const m = await model(request, 'language_model')
    const body = await readJson(request, limits.jsonBytes)
    if (!Array.isArray(body.words) || body.words.length === 0) throw new HttpError(400, 'Send {"words": [{"word": …}, …]}.')
    const words = body.words.map((entry: unknown) => wordDoc(entry))
    const cid = m.customization_id as string
    for (const doc of words) {
      const id = `${cid}/${doc.word}`
      await request.customerData.store('word', id, () => docs.put(instanceOf(request), 'word', id, doc), { replace: true })
    }
    return reply.code(201).send({})
  })
  app.put('/v1/customizations/:customization_id/words/:word_name', { config: childConfig('word', 'word_name', 'replace') }, async (request, reply) => {
    const m = await model(request, 'language_model')
    const body = await readJson(request, limits.jsonBytes)
    const doc = wordDoc({ ...body, word: (request.params as { word_name: string }).word_name })
    await docs.put(instanceOf(request), 'word', `${m.customization_id as string}/${doc.word}`, doc)
    return reply.code(201).send({})
  })
  childRoutes('/v1/customizations/:customization_id/words', 'language_model', 'word', 'words', 'word_name')

  // Grammars: raw SRGS.
  app.post('/v1/customizations/:customization_id/grammars/:grammar_name', { config: childConfig('grammar', 'grammar_name', 'replace') }, async (request, reply) => {
    const m = await model(request, 'language_model')
    const type = contentTypeOf(request).split(';')[0].trim().toLowerCase()
    if (!GRAMMAR_TYPES.includes(type)) throw new HttpError(415, `Send the grammar as ${GRAMMAR_TYPES.join(' or ')}.`)
    const name = resourceName((request.params as { grammar_name: string }).grammar_name, 'grammar')
    const id = `${m.customization_id as string}/${name}`
    const instance = instanceOf(request)
    await files.write(instance, 'grammar', id, bodyOf(request), limits.resourceBytes)
    await docs.put(instance, 'grammar', id, { name, out_of_vocabulary_words: 0, status: 'analyzed' })
    return reply.code(201).send({})
  })
  childRoutes('/v1/customizations/:customization_id/grammars', 'language_model', 'grammar', 'grammars', 'grammar_name')

  // Acoustic audio: raw audio, or an archive with Contained-Content-Type.
  app.post('/v1/acoustic_customizations/:customization_id/audio/:audio_name', { config: childConfig('audio', 'audio_name', 'replace') }, async (request: FastifyRequest, reply: FastifyReply) => {
    const m = await model(request, 'acoustic_model')
    const name = resourceName((request.params as { audio_name: string }).audio_name, 'audio resource')
    const id = `${m.customization_id as string}/${name}`
    const instance = instanceOf(request)
    const type = contentTypeOf(request).split(';')[0].trim().toLowerCase()
    const archive = ARCHIVE_TYPES.includes(type)
    const contained = request.headers['contained-content-type']?.toString()
    if (archive && contained === undefined) throw new HttpError(400, 'An archive needs a Contained-Content-Type header naming the audio format inside it.')
    if (!archive && !type.startsWith('audio/') && type !== 'application/octet-stream') throw new HttpError(415, 'Send audio (audio/…) or an archive (application/zip, application/gzip).')
    const overwrite = (request.query as { allow_overwrite?: string }).allow_overwrite === 'true'
    if (!overwrite && await docs.get(instance, 'audio', id) !== null) throw new HttpError(400, `Audio resource "${name}" already exists; send allow_overwrite=true to replace it.`)
    const bytes = await files.write(instance, 'audio', id, bodyOf(request), limits.resourceBytes)
    const format = contentTypeOf(request)
    const seconds = /rate=(\d+)/.test(format) ? bytes / (Number(/rate=(\d+)/.exec(format)?.[1]) * 2) : 0
    await docs.put(instance, 'audio', id, {
      name,
      duration: Math.round(seconds),
      details: archive ? { type: 'archive', compression: type === 'application/zip' ? 'zip' : 'gzip' } : describeAudio(format),
      status: 'ok',
      ...(archive ? { container: { name, details: describeAudio(contained as string) } } : {})
    })
    return reply.code(201).send({})
  })
  childRoutes('/v1/acoustic_customizations/:customization_id/audio', 'acoustic_model', 'audio', 'audio', 'audio_name', (audio) => ({
    total_minutes_of_audio: audio.reduce((n, a) => n + (a.duration as number), 0) / 60,
    audio
  }))
}
