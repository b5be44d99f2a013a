/**
 * `POST /v1/ohttp`: the gateway resource of RFC 9458 — encapsulated request
 * in, encapsulated response out, both opaque. The body is handed to
 * `enclave.handle` exactly as it arrived and every ciphertext chunk the
 * enclave produces is written to the socket as soon as it exists
 * (draft-ietf-ohai-chunked-ohttp: each engine SSE event is one chunk). The
 * gateway adds no framing, no Content-Length and no compression; what it
 * learns is an outcome code.
 *
 * Cancellation is one AbortSignal per request (the stream lease, limits.ts):
 * the client leaving, the first-byte and idle deadlines and shutdown all
 * abort it, and the enclave cancels the engine request on it.
 *
 * The relay is push-driven (`EncapsulatedResponse.pipe`, which every
 * enclave offers): measured on the bench, the former chain of async
 * generators, a Readable and a promise race plus a re-armed timer per chunk
 * was most of the gateway's own CPU per token.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { EncapsulatedChunkSink, Enclave, EncapsulatedResponse, PushControl } from '../../enclave/types.ts'
import { isEnclaveError } from '../../enclave/errors.ts'
import { GatewayError, errorCodeOf, isGatewayError } from '../errors.ts'
import { leaseDeadline, untilAborted, type LeaseDeadline, type StreamLease } from '../plugins/limits.ts'
import { reportedCode } from '../plugins/request-outcome.ts'
import { EMPTY_QUERY_SCHEMA, PROBLEM_RESPONSES } from './schemas.ts'

/** RFC 9458 §4.5 request media type. */
export const OHTTP_REQUEST_TYPE = 'message/ohttp-req'
/** draft-ietf-ohai-chunked-ohttp §6: the chunked request media type. */
export const OHTTP_CHUNKED_REQUEST_TYPE = 'message/ohttp-chunked-req'
export const OHTTP_REQUEST_TYPES: readonly string[] = [OHTTP_REQUEST_TYPE, OHTTP_CHUNKED_REQUEST_TYPE]

/** A response media type the enclave may name: a token/token pair, so it can never inject a header. */
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}$/

export interface OhttpRouteOptions extends Record<string, unknown> {
  readonly enclave: Enclave
}

/** Stop an encapsulated response nobody will read (it arrived after the gateway gave up). */
function discard(response: EncapsulatedResponse): void {
  response.outcome.catch(() => {})
  response.pipe({ chunk: () => false, end: () => {} }).cancel()
}

/** The media type without parameters, lower-cased (RFC 9110 §8.3.1: case-insensitive). */
function mediaTypeOf(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase()
}

export const ohttpRoute: FastifyPluginAsync<OhttpRouteOptions> = async (app, { enclave }) => {
  const { bodyLimit, timeouts, rateLimit, streamSlot } = app.gatewayLimits
  const metrics = app.gatewayMetrics

  // Only the two OHTTP request types are parsed in this context (the root
  // has no parsers at all): anything else is refused with 415 before a
  // byte of it is buffered.
  app.removeAllContentTypeParsers()
  for (const type of OHTTP_REQUEST_TYPES) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body))
  }

  /** Record the enclave's failure code and return the error to throw (codes only ever reach logs). */
  function failed(request: FastifyRequest, e: unknown): unknown {
    const code = isGatewayError(e) ? e.code : reportedCode(e)
    if (!isGatewayError(e)) metrics.enclaveOutcome('handle', code)
    request.cgwOutcome = isEnclaveError(e) || isGatewayError(e) ? e.code : errorCodeOf(e)
    return e
  }

  /**
   * Stream `response` to the client. The status line waits for the first
   * chunk, so that a failure before any ciphertext exists is still a proper
   * problem response (the returned promise rejects with it); from then on
   * the reply is the route's own (hijacked) and every chunk is written to
   * the socket the moment the enclave hands it over — synchronously, from
   * the engine's socket read, so chunks sealed in the same tick leave in one
   * writev (node's http corks a response until the end of the tick). No
   * promise, timer or listener per chunk: one abort listener and one
   * deadline timer per request (first byte, then idle), refreshed per chunk.
   */
  function relay(request: FastifyRequest, reply: FastifyReply, response: EncapsulatedResponse, lease: StreamLease, deadline: LeaseDeadline): Promise<void> {
    if (!MEDIA_TYPE.test(response.contentType)) {
      // An enclave bug: a content type that could inject a header.
      deadline.clear()
      lease.abort(new GatewayError('GATEWAY_INTERNAL'))
      discard(response)
      return Promise.reject(new GatewayError('GATEWAY_INTERNAL'))
    }
    const res = reply.raw
    return new Promise<void>((resolve, reject) => {
      let started = false
      let done = false
      let control: PushControl | null = null

      const cleanup = () => {
        done = true
        deadline.clear()
        lease.signal.removeEventListener('abort', onAbort)
        res.off('drain', onDrain)
      }
      /** Stop before or after the status line: a problem response, or a cut connection (never a clean end). */
      const stop = (e: unknown, internal: boolean) => {
        if (done) return
        cleanup()
        control?.cancel()
        if (!started) {
          reject(e === undefined ? new GatewayError('GATEWAY_INTERNAL') : failed(request, e))
          return
        }
        // After the first byte only a cut can tell the client: a chunked
        // OHTTP client treats a missing final chunk as an error.
        failed(request, e)
        if (internal) lease.abort(new GatewayError('GATEWAY_INTERNAL'))
        // Chunks written this tick still sit in the corked socket: send them before the cut.
        const socket = res.socket as { uncork?: () => void } | null
        if (typeof socket?.uncork === 'function') socket.uncork()
        res.destroy()
      }
      const onAbort = () => stop(lease.signal.reason, false)
      const onDrain = () => control?.resume()

      const sink: EncapsulatedChunkSink = {
        chunk(bytes) {
          if (done) return false
          if (!started) {
            started = true
            // The first-byte deadline gives way to the idle deadline, refreshed per chunk (O(1)).
            deadline.arm(timeouts.streamIdleMs)
            reply.hijack()
            res.writeHead(200, {
              'content-type': response.contentType,
              // Per-request ciphertext: nothing for a relay or browser to store.
              'cache-control': 'no-store',
              // Ask buffering reverse proxies (nginx) in front to pass chunks on at once.
              'x-accel-buffering': 'no',
            })
            resolve()
          } else {
            deadline.refresh()
          }
          return bytes.byteLength === 0 ? true : res.write(bytes)
        },
        end(error) {
          if (done) return
          if (error !== undefined) return stop(error, true)
          if (!started) {
            // An enclave bug: a response without any ciphertext.
            lease.abort(new GatewayError('GATEWAY_INTERNAL'))
            return stop(undefined, true)
          }
          cleanup()
          // End once the handler's outcome.then has recorded the code, which
          // the request's log line reads on 'close'. After a receipt this all
          // runs in one microtask checkpoint, so the final chunk and the end
          // of the chunked body still leave in one write.
          const finish = () => {
            if (!res.destroyed) res.end()
          }
          response.outcome.then(finish, finish)
        },
      }

      if (lease.signal.aborted) return stop(lease.signal.reason, false)
      lease.signal.addEventListener('abort', onAbort, { once: true })
      res.on('drain', onDrain)
      try {
        control = response.pipe(sink)
      } catch (e) {
        stop(e, true)
        return
      }
      if (done) control.cancel()
    })
  }

  app.post(
    '/v1/ohttp',
    {
      bodyLimit,
      onRequest: [rateLimit, streamSlot],
      // The body is ciphertext (no JSON schema can describe it) and the 200
      // answer is a byte stream; errors are problem documents.
      schema: { querystring: EMPTY_QUERY_SCHEMA, response: PROBLEM_RESPONSES },
    },
    async (request, reply) => {
      const lease = request.cgwStreamLease
      if (lease === null) throw new GatewayError('GATEWAY_INTERNAL') // the streamSlot hook always sets it
      const contentType = mediaTypeOf(request.headers['content-type'])
      if (!OHTTP_REQUEST_TYPES.includes(contentType)) throw new GatewayError('GATEWAY_UNSUPPORTED_MEDIA_TYPE')
      // An empty body never reaches the parser; the enclave judges it (malformed encapsulation).
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)

      const deadline = leaseDeadline(lease)
      deadline.arm(timeouts.firstByteMs)
      const pending = Promise.resolve().then(() =>
        enclave.handle(new Uint8Array(body.buffer, body.byteOffset, body.byteLength), contentType, { signal: lease.signal }),
      )
      let response: EncapsulatedResponse
      try {
        response = await untilAborted(pending, lease.signal)
      } catch (e) {
        deadline.clear()
        pending.then(discard, () => {})
        throw failed(request, e)
      }
      response.outcome.then(
        (o) => {
          metrics.enclaveOutcome('handle', o.code)
          // The gateway's own reason (a deadline, the client leaving) names
          // the request's outcome better than the cancellation it caused.
          request.cgwOutcome ??= o.code
        },
        () => {},
      )
      await relay(request, reply, response, lease, deadline)
    },
  )
}
