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
 */
import { Readable } from 'node:stream'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { Enclave, EncapsulatedResponse } from '../../enclave/types.ts'
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
  const it = response.chunks[Symbol.asyncIterator]()
  void it.return?.()?.catch(() => {})
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
   * The chunks after the first, each re-arming the idle deadline; then the
   * outcome, awaited so that it is recorded before the response ends.
   */
  async function* relay(
    request: FastifyRequest,
    first: Uint8Array,
    it: AsyncIterator<Uint8Array>,
    response: EncapsulatedResponse,
    lease: StreamLease,
    deadline: LeaseDeadline,
  ): AsyncGenerator<Uint8Array> {
    let complete = false
    try {
      yield first
      for (;;) {
        const r = await untilAborted(it.next(), lease.signal)
        if (r.done) break
        deadline.arm(timeouts.streamIdleMs)
        if (r.value.byteLength > 0) yield r.value
      }
      deadline.arm(timeouts.streamIdleMs)
      await untilAborted(response.outcome, lease.signal).catch(() => {})
      complete = true
    } catch (e) {
      // After the first byte nothing but a cut connection can tell the
      // client: a chunked OHTTP client treats a missing final chunk as an
      // error. The thrown value is replaced by a bare code so that nothing
      // downstream (fastify's stream error path) sees its message.
      failed(request, e)
      throw new GatewayError(isGatewayError(e) ? e.code : 'GATEWAY_INTERNAL')
    } finally {
      deadline.clear()
      if (!complete) {
        lease.abort(new GatewayError('GATEWAY_INTERNAL'))
        void it.return?.()?.catch(() => {})
      }
    }
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

      // The status line waits for the first chunk, so that a failure before
      // any ciphertext exists is still a proper problem response.
      const it = response.chunks[Symbol.asyncIterator]()
      let first: IteratorResult<Uint8Array>
      try {
        first = await untilAborted(it.next(), lease.signal)
      } catch (e) {
        deadline.clear()
        void it.return?.()?.catch(() => {})
        throw failed(request, e)
      }
      if (first.done || !MEDIA_TYPE.test(response.contentType)) {
        deadline.clear()
        lease.abort(new GatewayError('GATEWAY_INTERNAL'))
        void it.return?.()?.catch(() => {})
        throw new GatewayError('GATEWAY_INTERNAL') // an enclave bug: no ciphertext, or an unusable content type
      }
      deadline.arm(timeouts.streamIdleMs)

      const stream = Readable.from(relay(request, first.value, it, response, lease, deadline), { objectMode: false })
      return reply
        .code(200)
        .header('content-type', response.contentType)
        // Per-request ciphertext: nothing for a relay or browser to store.
        .header('cache-control', 'no-store')
        // Ask buffering reverse proxies (nginx) in front to pass chunks on at once.
        .header('x-accel-buffering', 'no')
        .send(stream)
    },
  )
}
