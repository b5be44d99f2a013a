/**
 * JSON schemas shared by the routes: the empty query string most routes
 * take, and problem documents for every error status class.
 */
import { PROBLEM_SCHEMA } from '../errors.ts'

/**
 * A route that reads no query parameters. fastify's ajv removes unknown
 * properties (`removeAdditional`), so a stray parameter is dropped before
 * any handler could read it, rather than refused.
 */
export const EMPTY_QUERY_SCHEMA = { type: 'object', additionalProperties: false, properties: {} } as const

/** Response schemas for errors: every 4xx/5xx is an RFC 9457 problem document. */
export const PROBLEM_RESPONSES = { '4xx': PROBLEM_SCHEMA, '5xx': PROBLEM_SCHEMA } as const
