// Every Watson route needs the credentials of a service instance, and a path under
// /instances/:instance_id/ must name that same instance: another instance's URL is never served
// with the caller's own data (docs/ARCHITECTURE.md, "Instances").
import type { FastifyReply, FastifyRequest } from 'fastify'
import { sendWatsonError } from './watson-errors.js'

export async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  let instance: string
  try {
    instance = await request.customerData.instance()
  } catch (err) {
    const e = err as { statusCode?: number, message: string }
    sendWatsonError(reply, e.statusCode === 503 ? 503 : 401, e.message)
    return
  }
  const named = (request.params as { instance_id?: string } | undefined)?.instance_id
  if (named !== undefined && named !== instance) {
    // 404 rather than 403: whether another instance exists is not the caller's business.
    sendWatsonError(reply, 404, 'No such service instance for these credentials: use the instance URL of your API key.')
    return
  }
  (request as FastifyRequest & { instanceId: string }).instanceId = instance
}
