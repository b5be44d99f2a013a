/**
 * `cgw`: command dispatch. Each command is a function from arguments and an
 * output sink to an exit code, so tests run them in-process.
 */
import { runVerifyQuote } from './commands/verify-quote.ts'
import { runStart } from './commands/start.ts'
import { runVerifyGpu } from './commands/verify-gpu.ts'
import { EXIT } from './exit-codes.ts'

export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
}

const stdio: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
}

const COMMANDS: Record<string, (args: string[], io: Io) => Promise<number>> = {
  'verify-quote': runVerifyQuote,
  'verify-gpu': runVerifyGpu,
  start: runStart,
  gateway: (args, io) => import('./commands/gateway.ts').then((m) => m.runGateway(args, io)),
}

const USAGE = `usage: cgw <command> [options]

commands:
  verify-quote <quote file> [--collateral FILE | --pcs URL] [--policy FILE] [--at ISO-TIME] [--json]
  verify-gpu <evidence.json> [--nonce HEX] [--rims DIR] [--policy FILE] [--dev-root FILE] [--at ISO-TIME] [--json]
  gateway --config FILE   run the provider gateway (enclave + OHTTP + engine; see gateway/config.ts)
  start          run the local system (for now: verify a bundled real quote)

exit codes: 0 accepted, 1 usage, 2 parse error, 3 verification failed, 4 policy rejected, 5 collateral unavailable, 6 enclave unavailable
`

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE)
    return name ? EXIT.OK : EXIT.USAGE
  }
  const command = COMMANDS[name]
  if (!command) {
    io.err(`cgw: unknown command "${name}"\n\n${USAGE}`)
    return EXIT.USAGE
  }
  return command(rest, io)
}
