/**
 * Plugin helpers. fastify-plugin is not a dependency, so a plugin whose
 * hooks and decorators must reach its siblings (metrics, limits, the
 * request-log hook) is marked with the symbol fastify itself reads for that
 * (`skip-override`, what fastify-plugin sets); everything else stays
 * encapsulated.
 */
import type { FastifyPluginAsync } from 'fastify'

/** Mark `plugin` to run in its parent's context instead of a child one, under a display name. */
export function sharedPlugin<O extends Record<string, unknown>>(name: string, plugin: FastifyPluginAsync<O>): FastifyPluginAsync<O> {
  const marked = plugin as FastifyPluginAsync<O> & Record<symbol, unknown>
  marked[Symbol.for('skip-override')] = true
  marked[Symbol.for('fastify.display-name')] = name
  return plugin
}
