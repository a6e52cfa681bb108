// DELETE /v1/user_data, GET /v1/user_data (export) and GET /v1/user_data/deletions/:id
// (docs/ARCHITECTURE.md, "Deletion"). Encapsulated, so a `prefix` applies and the Watson error handler set here stays
// inside these routes.
import fp from 'fastify-plugin'
import { Type } from '@fastify/type-provider-typebox'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { FST_CUSTOMER_DATA_BAD_REQUEST, FST_CUSTOMER_DATA_DELETION_NOT_FOUND, FST_CUSTOMER_DATA_UNAUTHORIZED } from '../lib/errors.js'
import { DEFAULT_MAX_ID_LENGTH, MAX_METADATA_BYTES, validateCustomerId } from '../lib/metadata.js'
import { checkInteger, checkKnownKeys, FASTIFY_PLUGIN_KEYS } from '../lib/options.js'
import type { DeletionRecord } from '../lib/store.js'
import { sendStoreAware } from './watson-reply.js'
import { DeletionListQuery, DeletionListSchema, DeletionOverviewSchema, DEFAULT_LIST_LIMIT, deletionListBody, deletionOverviewBody } from './deletion-overview-wire.js'

export interface UserDataRoutesOptions {
  /** Longest accepted customer_id, in characters; keep equal to the metadata option. Default 256. */
  maxIdLength?: number
}

// Every field optional and extra ones kept: a host's own hook may answer these routes (its 401, its
// 429) with a body of its own, which must reach the client as the host sent it.
const WatsonError = Type.Object({
  code: Type.Optional(Type.Integer()),
  code_description: Type.Optional(Type.String()),
  error: Type.Optional(Type.String())
}, { additionalProperties: true, description: 'Watson error: `error` says what is wrong and how to fix it' })

const Deletion = Type.Object({
  deletion_id: Type.String(),
  status: Type.Union([Type.Literal('running'), Type.Literal('completed')]),
  erased: Type.Record(Type.String(), Type.Integer(), { description: 'resources erased so far, per kind' })
})

const CustomerIdQuery = Type.String({ minLength: 1, description: 'The customer ID the data was labeled with (X-Watson-Metadata: customer_id=…)' })

const errorResponses = { 400: WatsonError, 401: WatsonError, 503: WatsonError }

function deletionBody (d: DeletionRecord): { deletion_id: string, status: string, erased: Record<string, number> } {
  return { deletion_id: d.id, status: d.status, erased: d.erased }
}

declare module 'fastify' {
  interface FastifyRequest {
    customerDataInstance?: string
  }
}

const routes: FastifyPluginAsync<UserDataRoutesOptions> = async (fastify, options) => {
  checkKnownKeys('userDataRoutes', options, ['maxIdLength', ...FASTIFY_PLUGIN_KEYS])
  const maxIdLength = checkInteger('maxIdLength', options.maxIdLength, { min: 1, max: MAX_METADATA_BYTES }, DEFAULT_MAX_ID_LENGTH)
  const api = fastify.customerData

  fastify.setErrorHandler(function watsonErrors (err: { statusCode?: number }, request, reply) {
    if ((err.statusCode ?? 500) >= 500 && err.statusCode !== 503) request.log.error({ err }, 'user_data route failed')
    return sendStoreAware(reply, err)
  })

  fastify.addHook('preHandler', async function resolveInstance (request: FastifyRequest, reply: FastifyReply) {
    let instance: string | null
    try {
      instance = await api.resolveInstance(request)
    } catch (err) {
      return sendStoreAware(reply, err)
    }
    if (instance === null) return sendStoreAware(reply, new FST_CUSTOMER_DATA_UNAUTHORIZED())
    request.customerDataInstance = instance
  })

  function customerIdOf (request: FastifyRequest): string {
    return validateCustomerId((request.query as Record<string, unknown>).customer_id, maxIdLength)
  }

  function rejectOtherValidation (request: FastifyRequest): void {
    const err = request.validationError
    if (err !== undefined && err !== null && !/customer_id/.test(err.message)) {
      throw new FST_CUSTOMER_DATA_BAD_REQUEST(`Invalid ${err.validationContext ?? 'request'}: ${err.message.replace(/^querystring\/?/, '')}`)
    }
  }

  fastify.delete('/v1/user_data', {
    attachValidation: true,
    schema: {
      summary: 'Delete all data labeled with a customer ID',
      querystring: Type.Object({ customer_id: CustomerIdQuery }),
      response: { 200: Deletion, 202: Deletion, ...errorResponses }
    }
  }, async function deleteUserData (request, reply) {
    const customerId = customerIdOf(request)
    const deletion = await api.requestDeletion(request.customerDataInstance as string, customerId)
    return reply.code(deletion.status === 'completed' ? 200 : 202).send(deletionBody(deletion))
  })

  fastify.get('/v1/user_data/deletions/:deletion_id', {
    schema: {
      summary: 'Status of a deletion, with its progress',
      params: Type.Object({ deletion_id: Type.String({ maxLength: 128 }) }),
      response: { 200: DeletionOverviewSchema, 404: WatsonError, 401: WatsonError, 503: WatsonError }
    }
  }, async function deletionStatus (request) {
    const { deletion_id: id } = request.params as { deletion_id: string }
    const deletion = await api.deletionOverview(request.customerDataInstance as string, id)
    if (deletion === null) throw new FST_CUSTOMER_DATA_DELETION_NOT_FOUND()
    return deletionOverviewBody(deletion)
  })

  fastify.get('/v1/user_data/deletions', {
    attachValidation: true,
    schema: {
      summary: "The instance's deletions, newest first, with their progress",
      querystring: DeletionListQuery,
      response: { 200: DeletionListSchema, ...errorResponses }
    }
  }, async function listDeletions (request) {
    rejectOtherValidation(request)
    const { status, limit, cursor } = request.query as { status?: 'running' | 'completed', limit?: number, cursor?: string }
    const page = await api.listDeletions(request.customerDataInstance as string, { status, limit: limit ?? DEFAULT_LIST_LIMIT, cursor: cursor ?? null })
    return deletionListBody(page)
  })

  fastify.get('/v1/user_data', {
    attachValidation: true,
    schema: {
      summary: 'Export what is labeled with a customer ID (GDPR Art. 15)',
      querystring: Type.Object({
        customer_id: CustomerIdQuery,
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        cursor: Type.Optional(Type.String({ maxLength: 64, pattern: '^[0-9]+$' }))
      }),
      response: {
        200: Type.Object({
          customer_id: Type.String(),
          resources: Type.Array(Type.Object({ kind: Type.String(), id: Type.String(), labeled_at: Type.String({ format: 'date-time' }) })),
          next_cursor: Type.Union([Type.String(), Type.Null()])
        }),
        ...errorResponses
      }
    }
  }, async function exportUserData (request) {
    const customerId = customerIdOf(request)
    rejectOtherValidation(request)
    const { limit, cursor } = request.query as { limit?: number, cursor?: string }
    const page = await api.exportLabels(request.customerDataInstance as string, customerId, { limit: limit ?? 100, cursor: cursor ?? null })
    return {
      customer_id: customerId,
      resources: page.items.map((r) => ({ kind: r.kind, id: r.id, labeled_at: new Date(r.labeledAt).toISOString() })),
      next_cursor: page.next
    }
  })
}

export const userDataRoutes = fp(routes, {
  name: 'fastify-customer-data/user-data-routes',
  fastify: '5.x',
  encapsulate: true,
  dependencies: ['fastify-customer-data/customer-labels']
})
export default userDataRoutes
