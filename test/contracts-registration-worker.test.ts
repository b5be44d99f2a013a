/**
 * gateway/registration-worker.ts against a real anvil and a dev registry:
 * registers at start, again at each epoch change, retries with backoff
 * through RPC failures (reported in status() for /readyz), and hands each
 * success to onRegistered.
 */
import t from 'tap'
import { keccak256 } from 'viem'
import { createRegistrationWorker, type RegisteredEvent } from '../gateway/registration-worker.ts'
import { RegistryError } from '../contracts/client/errors.ts'
import type { RegistryWriter } from '../contracts/registry-types.ts'
import { devRegistry, EPOCH_LENGTH_MS } from './helpers/dev-registry.ts'

function waitFor<T>(list: T[], n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (list.length >= n ? resolve() : setImmediate(check))
    check()
  })
}

t.test('registers at start and at every epoch change', async (t) => {
  const f = await devRegistry(t)
  const events: RegisteredEvent[] = []
  const worker = createRegistrationWorker({
    registry: f.registry,
    evidence: f.evidence,
    epochs: f.epochs,
    onRegistered: (e) => events.push(e),
    now: () => f.clock,
    retryInitialMs: 5,
    pollMs: 1_000_000,
  })
  t.teardown(() => worker.stop())
  const watched: { enclaveId: string; model: string; epoch: bigint }[] = []
  const unwatch = f.registry.watchRegistrations((e) => watched.push(e))
  t.teardown(unwatch)
  t.equal(worker.status().ready, false)
  worker.start()
  await waitFor(events, 1)
  await waitFor(watched, 1)
  t.equal(watched[0]!.enclaveId, events[0]!.enclaveId, 'watchRegistrations saw it')
  t.equal(watched[0]!.epoch, events[0]!.epoch)
  t.equal(events[0]!.enclaveId, keccak256(f.logPublicKey))
  t.equal(events[0]!.epoch, f.epochs.current().number)
  t.equal(worker.status().ready, true)
  t.equal(worker.status().state, 'registered')
  const rec = await f.registry.enclave(events[0]!.enclaveId)
  t.equal(rec!.signingAddress, f.epochs.current().signingKey.address)

  f.clock += EPOCH_LENGTH_MS
  await f.epochs.rotateIfDue()
  t.equal(worker.status().ready, false, 'not ready for the new epoch until it is registered')
  worker.epochChanged()
  await waitFor(events, 2)
  t.equal(events[1]!.epoch, f.epochs.current().number)
  t.ok(events[1]!.blockNumber > events[0]!.blockNumber)
  t.equal((await f.registry.enclave(events[1]!.enclaveId))!.signingAddress, f.epochs.current().signingKey.address)
  t.equal(worker.status().ready, true)
  await worker.stop()
  t.equal(worker.status().state, 'stopped')
  t.equal(worker.status().ready, false)
})

t.test('retries with backoff on RPC failure and reports it', async (t) => {
  const f = await devRegistry(t)
  let failuresLeft = 3
  const flaky: RegistryWriter = {
    chainId: f.registry.chainId,
    address: f.registry.address,
    freshnessBlock: () => f.registry.freshnessBlock(),
    hasPckCert: (id) => f.registry.hasPckCert(id),
    async register(s) {
      if (failuresLeft-- > 0) throw new RegistryError('REGISTRY_RPC_FAILED')
      return f.registry.register(s)
    },
  }
  const events: RegisteredEvent[] = []
  const statuses: string[] = []
  const worker = createRegistrationWorker({
    registry: flaky,
    evidence: f.evidence,
    epochs: f.epochs,
    onRegistered: (e) => events.push(e),
    now: () => f.clock,
    retryInitialMs: 1,
    retryMaxMs: 4,
    pollMs: 1_000_000,
    logger: { info: () => {}, warn: () => statuses.push(JSON.stringify(worker.status().lastError)) },
  })
  t.teardown(() => worker.stop())
  worker.start()
  await waitFor(events, 1)
  t.equal(statuses.length, 3, 'three failed attempts were reported')
  t.match(statuses[0], /REGISTRY_RPC_FAILED/)
  t.equal(worker.status().failures, 0, 'reset by the success')
  t.equal(worker.status().lastError, null)
  t.equal(worker.status().ready, true)
})
