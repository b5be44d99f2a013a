/**
 * The attestation log, served statically (C2SP tlog-tiles):
 *
 *   GET /log/checkpoint            latest signed checkpoint (no-cache)
 *   GET /log/key                   the log's signed-note verifier key
 *   GET /log/tile/<L>/<N>[.p/<W>]  hash tiles
 *   GET /log/tile/entries/<N>[.p/<W>]  entry bundles
 *   GET /log/blob/<sha256>         public artifacts entries refer to
 *   GET /log/proof/<index>         convenience: inclusion proof (JSON) of one entry against the latest checkpoint
 *   GET /logs/<logId hex>/...      the same for an earlier log of this data directory (a restarted gateway's)
 *
 * Under /logs/<logId>/ full tiles and the key never change, so they are
 * cached for a year and marked immutable (tlog-tiles: "full tiles ...
 * SHOULD be cached indefinitely"); partial tiles are retired once the full
 * tile exists, so they get a short lifetime. Under /log/ the same paths
 * name whichever log `current` names, and a restart starts a new log (new
 * key, new tiles at the same paths): there the key and every tile are
 * no-cache, so a client never keeps the previous log's under the live
 * name. Blobs are named by their SHA-256, so the same path is the same
 * bytes under either prefix: immutable. The checkpoint must always be
 * fresh. Files are
 * read from the log directory the writer keeps (enclave/log/storage.ts);
 * paths are parsed strictly, so no request names a file outside it. Log
 * routes are not rate limited: they are static public files, and an
 * auditor fetches thousands.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { inclusionProofToJson, proveInclusion } from '../../attestation/log/client.ts'
import { parseVerifierKey } from '../../attestation/log/note.ts'
import { createDirectoryLogSource } from '../../attestation/log/reader.ts'
import { parseTilePath, TILE_WIDTH } from '../../attestation/log/tile.ts'
import { GatewayError } from '../errors.ts'
import { EMPTY_QUERY_SCHEMA, PROBLEM_RESPONSES } from './schemas.ts'

/** tlog-tiles: full tiles and blobs are immutable (a full tile only under /logs/<logId>/: module header). */
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=31536000, immutable'
/** Partial tiles may be deleted once the full tile exists. */
export const PARTIAL_TILE_CACHE_CONTROL = 'public, max-age=60'
export const CHECKPOINT_CACHE_CONTROL = 'no-cache'
/** The key and tiles under the live /log/ prefix: it follows `current`, which a restart changes (module header). */
export const LIVE_LOG_CACHE_CONTROL = 'no-cache'

export interface LogRouteOptions extends Record<string, unknown> {
  /** The data directory: logs in `<dataDir>/<logId hex>/`, the live one named by `<dataDir>/current` (enclave/log/index.ts). */
  readonly dataDir: string
  /** The live log's directory, when the caller knows it (default: from `current`). */
  readonly dir?: string
}

const LOG_ID = '^[0-9a-f]{64}$'
/** LOG_ID as a RegExp, built once: for `current` and for the tile route, whose wildcard path has no params schema. */
const LOG_ID_RE = new RegExp(LOG_ID)
const SHA256 = '^[0-9a-f]{64}$'

async function file(path: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch {
    throw new GatewayError('GATEWAY_NOT_FOUND')
  }
}

export const logRoutes: FastifyPluginAsync<LogRouteOptions> = async (app, { dir, dataDir }) => {
  const base = async (logId: string | undefined): Promise<string> => {
    if (logId !== undefined) return join(dataDir, logId)
    if (dir !== undefined) return dir
    const id = (await file(join(dataDir, 'current'))).toString('utf8').trim()
    if (!LOG_ID_RE.test(id)) throw new GatewayError('GATEWAY_NOT_FOUND')
    return join(dataDir, id)
  }
  const send = (reply: FastifyReply, bytes: Buffer, type: string, cache: string) => reply.header('content-type', type).header('cache-control', cache).send(bytes)

  for (const prefix of ['/log', '/logs/:logId'] as const) {
    const params = prefix === '/log' ? undefined : { type: 'object', required: ['logId'], properties: { logId: { type: 'string', pattern: LOG_ID } } }
    type P = { logId?: string }
    const live = prefix === '/log'
    app.get(
      `${prefix}/checkpoint`,
      { schema: { querystring: EMPTY_QUERY_SCHEMA, ...(params ? { params } : {}), response: PROBLEM_RESPONSES } },
      async (request, reply) => send(reply, await file(join(await base((request.params as P).logId), 'checkpoint')), 'text/plain; charset=utf-8', CHECKPOINT_CACHE_CONTROL),
    )
    app.get(
      `${prefix}/key`,
      { schema: { querystring: EMPTY_QUERY_SCHEMA, ...(params ? { params } : {}), response: PROBLEM_RESPONSES } },
      async (request, reply) => send(reply, await file(join(await base((request.params as P).logId), 'key')), 'text/plain; charset=utf-8', live ? LIVE_LOG_CACHE_CONTROL : IMMUTABLE_CACHE_CONTROL),
    )
    app.get(
      `${prefix}/tile/*`,
      { schema: { querystring: EMPTY_QUERY_SCHEMA, response: PROBLEM_RESPONSES } },
      async (request, reply) => {
        const rest = `tile/${(request.params as { '*': string })['*']}`
        let c
        try {
          c = parseTilePath(rest)
        } catch {
          throw new GatewayError('GATEWAY_NOT_FOUND')
        }
        const logId = (request.params as P).logId
        if (logId !== undefined && !LOG_ID_RE.test(logId)) throw new GatewayError('GATEWAY_NOT_FOUND')
        const cache = live ? LIVE_LOG_CACHE_CONTROL : c.width === TILE_WIDTH ? IMMUTABLE_CACHE_CONTROL : PARTIAL_TILE_CACHE_CONTROL
        return send(reply, await file(join(await base(logId), rest)), 'application/octet-stream', cache)
      },
    )
    app.get(
      `${prefix}/blob/:sha256`,
      {
        schema: {
          querystring: EMPTY_QUERY_SCHEMA,
          params: { type: 'object', required: ['sha256'], properties: { sha256: { type: 'string', pattern: SHA256 }, ...(params ? params.properties : {}) } },
          response: PROBLEM_RESPONSES,
        },
      },
      async (request, reply) => {
        const p = request.params as P & { sha256: string }
        return send(reply, await file(join(await base(p.logId), 'blob', p.sha256)), 'application/octet-stream', IMMUTABLE_CACHE_CONTROL)
      },
    )
    app.get(
      `${prefix}/proof/:index`,
      {
        schema: {
          querystring: EMPTY_QUERY_SCHEMA,
          params: { type: 'object', required: ['index'], properties: { index: { type: 'string', pattern: '^(0|[1-9][0-9]{0,15})$' }, ...(params ? params.properties : {}) } },
          response: {
            200: {
              type: 'object',
              additionalProperties: false,
              required: ['index', 'size', 'checkpoint', 'entry', 'proof'],
              properties: {
                index: { type: 'integer' },
                size: { type: 'integer' },
                checkpoint: { type: 'string' },
                entry: { type: 'string' },
                proof: { type: 'array', items: { type: 'string' } },
              },
            },
            ...PROBLEM_RESPONSES,
          },
        },
      },
      async (request, reply) => {
        const p = request.params as P & { index: string }
        const d = await base(p.logId)
        const source = createDirectoryLogSource(d)
        const { publicKey } = parseVerifierKey((await file(join(d, 'key'))).toString('utf8').trim())
        let proof
        try {
          proof = await proveInclusion(source, publicKey, Number(p.index))
        } catch {
          // Out of range, or a log not (yet) readable: nothing to prove.
          throw new GatewayError('GATEWAY_NOT_FOUND')
        }
        return reply.header('cache-control', CHECKPOINT_CACHE_CONTROL).send(inclusionProofToJson(proof))
      },
    )
  }
}
