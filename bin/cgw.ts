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
  audit: (args, io) => import('./commands/audit.ts').then((m) => m.runAudit(args, io)),
  verify: (args, io) => import('./commands/verify.ts').then((m) => m.runVerify(args, io)),
  chat: (args, io) => import('./commands/chat.ts').then((m) => m.runChat(args, io)),
  proxy: (args, io) => import('./commands/proxy.ts').then((m) => m.runProxy(args, io)),
  measure: (args, io) => import('./commands/measure.ts').then((m) => m.runMeasure(args, io)),
}

const USAGE = `usage: cgw <command> [options]

commands:
  verify-quote <quote file> [--collateral FILE | --pcs URL] [--policy FILE] [--event-log FILE] [--runtime-events FILE] [--at ISO-TIME] [--json]
  verify-gpu <evidence.json> [--nonce HEX] [--rims DIR] [--policy FILE] [--dev-root FILE] [--at ISO-TIME] [--json]
  gateway --config FILE   run the provider gateway (enclave + OHTTP + engine; see gateway/config.ts)
  verify <gateway URL> [--policy FILE] [--collateral FILE | --pcs URL] [--json]
                 verify a provider (TDX, GPU, binding, policy, on-chain record) as the client SDK does
  chat [gateway URL] --model NAME "prompt" [--policy FILE] [--relay URL] [--max-tokens N] [--json]
                 verify, send encrypted, stream the answer, print the verified receipt
  proxy --config FILE   the enterprise proxy: plain OpenAI API on 127.0.0.1, verified and encrypted upstream
  measure --config FILE (--release DIR | --release-hash HEX | --unreleased) [--compose FILE] [--reference dev|FILE]
          [--pcs URL | --collateral FILE] [--policy-out FILE]
                 the TDX measurements, workload id and client policy of a deployment, computed from source
  audit <log URL or directory> [--registry ADDRESS --rpc URL] [--from N] [--state FILE] [--dev-root FILE] [--collateral DIR | --pcs URL] [--json]
                 replay a gateway's attestation log (exit 3 on any finding)
  start          run the whole local system: chain, contracts, gateway (dev TEE), proxy

exit codes: 0 accepted, 1 usage, 2 parse error, 3 verification failed, 4 policy rejected, 5 collateral unavailable, 6 enclave unavailable,
            7 not vouched for by the registry, 8 gateway or registry unreachable, 9 the answer failed its checks
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
