/**
 * Input for the `cgw` commands: files, where every failure to read is a
 * ConfigError (exit code 1), never an uncaught exception; `--at`; and the
 * stop signal a long-running command (proxy, start) waits for.
 */
import { readFile } from 'node:fs/promises'
import { ConfigError } from '../attestation/errors.ts'
import { pemToDer } from '../attestation/asn1/pem.ts'

export async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path))
  } catch (e) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `cannot read ${what} ${path}`, { cause: e, details: { path } })
  }
}

export async function readJson(path: string, what: string): Promise<unknown> {
  const text = Buffer.from(await readInput(path, what)).toString('utf8')
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new ConfigError('ATTESTATION_OPTIONS_INVALID', `${what} ${path} is not JSON`, { cause: e, details: { path } })
  }
}

/** A certificate file, PEM or DER, as DER. */
export async function readCertificate(path: string, what: string): Promise<Uint8Array> {
  const bytes = await readInput(path, what)
  const text = Buffer.from(bytes).toString('latin1')
  return text.includes('-----BEGIN') ? pemToDer(text)[0]! : bytes
}

/** `--at`: an ISO 8601 instant, or now. */
export function instantOption(at: string | undefined): Date {
  const now = at ? new Date(at) : new Date()
  if (Number.isNaN(now.getTime())) throw new ConfigError('ATTESTATION_OPTIONS_INVALID', '--at is not an ISO 8601 time')
  return now
}

/**
 * Resolves on the first SIGINT or SIGTERM and stops listening for both then,
 * so a second one during shutdown is no longer swallowed here (with no
 * other listener, Node's default applies: exit at once). `signals` is the
 * emitter to listen on (a test passes its own).
 */
export function untilSignal(signals: NodeJS.EventEmitter = process): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      signals.off('SIGINT', stop)
      signals.off('SIGTERM', stop)
      resolve()
    }
    signals.on('SIGINT', stop)
    signals.on('SIGTERM', stop)
  })
}
