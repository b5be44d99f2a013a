/**
 * Key epochs under a fixed, hand-moved clock: numbering, key ids (mod 256,
 * never two live epochs with one id), grace, destruction, expired vs
 * unknown, failures of the key factory, close(); and once with the real
 * clock and the manager's own timer.
 */
import { inspect } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createEpochManager, type EpochChange, type OhttpKeyLike } from '../enclave/epochs.ts'
import { EnclaveError } from '../enclave/errors.ts'
import { codeOf, thrown } from './helpers/errors.ts'

const L = 60_000
const GRACE = 10_000
const CANARY = 'PRIVATE-KEY-CANARY'

interface FakeKey extends OhttpKeyLike {
  destroyed: boolean
  readonly privateKey: string
}

function factory() {
  const made: FakeKey[] = []
  const newOhttpKey = (keyId: number): FakeKey => {
    const k: FakeKey = {
      keyId,
      keyConfig: Uint8Array.of(keyId, 0x00, 0x20, made.length),
      privateKey: CANARY,
      destroyed: false,
      destroy() {
        k.destroyed = true
      },
    }
    made.push(k)
    return k
  }
  return { made, newOhttpKey }
}

function clock(start: number) {
  let t = start
  return { now: () => t, set: (v: number) => void (t = v), add: (d: number) => void (t += d) }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  )
}

const START = 1_000 * L + 123 // inside epoch 1000

t.test('the first epoch is the window containing now', async (t) => {
  const c = clock(START)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: GRACE, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  const e = m.current()
  t.equal(e.number, 1000n)
  t.equal(e.keyId, 1000 % 256)
  t.equal(e.ohttpKey.keyId, e.keyId)
  t.equal(e.expiresAt, 1001 * L)
  t.equal(e.createdAt, START)
  t.same(m.live(), [e])
  t.same(m.lookup(e.keyId), { status: 'live', epoch: e, current: true, liveUntil: null })
  t.same(m.lookup((e.keyId + 1) % 256), { status: 'unknown', keyId: (e.keyId + 1) % 256 })
  t.equal(await m.rotateIfDue(), false, 'not due before the window ends')
  c.set(1001 * L - 1)
  t.equal(await m.rotateIfDue(), false)
  m.close()
})

t.test('rotation: previous lives through grace, then is destroyed and reported expired', async (t) => {
  const c = clock(START)
  const f = factory()
  const changes: EpochChange<FakeKey>[] = []
  const m = await createEpochManager({
    epochLengthMs: L,
    graceMs: GRACE,
    now: c.now,
    newOhttpKey: f.newOhttpKey,
    onChange: (ch) => changes.push(ch),
    autoRotate: false,
  })
  const first = m.current()
  c.set(1001 * L + 5)
  t.equal(await m.rotateIfDue(), true)
  const second = m.current()
  t.equal(second.number, 1001n)
  t.equal(second.keyId, 1001 % 256)
  t.not(second.signingKey.address, first.signingKey.address, 'a new signing key')
  t.not(Buffer.from(second.ohttpKey.keyConfig).toString('hex'), Buffer.from(first.ohttpKey.keyConfig).toString('hex'), 'a new key config')
  t.same(changes, [{ current: second, previous: first, previousLiveUntil: 1001 * L + 5 + GRACE }])
  t.same(m.live(), [second, first])
  t.same(m.lookup(first.keyId), { status: 'live', epoch: first, current: false, liveUntil: 1001 * L + 5 + GRACE })
  t.equal(first.ohttpKey.destroyed, false)
  t.equal(first.signingKey.destroyed, false)

  c.set(1001 * L + 5 + GRACE - 1)
  t.equal(m.lookup(first.keyId).status, 'live', 'still live 1 ms before grace ends')
  c.set(1001 * L + 5 + GRACE)
  // No timer ran: lookup checks the clock itself.
  t.same(m.lookup(first.keyId), { status: 'expired', keyId: first.keyId, epoch: 1000n })
  t.equal(first.ohttpKey.destroyed, true, 'OHTTP key destroyed after grace')
  t.equal(first.signingKey.destroyed, true, 'signing key destroyed after grace')
  t.same(m.live(), [second])
  t.equal(second.ohttpKey.destroyed, false)
  m.close()
})

t.test('key ids wrap mod 256 and skipped windows are skipped', async (t) => {
  const c = clock(255 * L)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: GRACE, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  t.equal(m.current().keyId, 255)
  c.set(256 * L)
  await m.rotateIfDue()
  t.equal(m.current().number, 256n)
  t.equal(m.current().keyId, 0)
  c.set(260 * L + 1)
  await m.rotateIfDue()
  t.equal(m.current().number, 260n, 'a late rotation lands in the window of now')
  t.equal(m.live().length, 2)
  t.equal(m.lookup(255).status, 'expired', 'epoch 255 was destroyed when 256 retired it')
  m.close()
})

t.test('a jump of 256 epochs never leaves two live epochs with one key id', async (t) => {
  const c = clock(10 * L)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: L, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  const old = m.current()
  c.set(266 * L) // a VM suspended for 256 windows
  t.equal(await m.rotateIfDue(), true)
  t.equal(m.current().number, 266n)
  t.equal(m.current().keyId, old.keyId)
  t.same(m.live(), [m.current()], 'the old epoch is gone at once')
  t.equal(old.ohttpKey.destroyed, true)
  const l = m.lookup(old.keyId)
  t.equal(l.status === 'live' && l.epoch, m.current())
  m.close()
})

t.test('the clock going back does not rotate or renumber', async (t) => {
  const c = clock(START)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: GRACE, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  c.set(START - 5 * L)
  t.equal(await m.rotateIfDue(), false)
  t.equal(m.current().number, 1000n)
  c.set(1001 * L)
  await m.rotateIfDue()
  t.equal(m.current().number, 1001n)
  m.close()
})

t.test('a second rotation while the previous is in grace: at most two live', async (t) => {
  const c = clock(START)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: L, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  const first = m.current()
  c.set(1001 * L + 500) // late timer: grace of `first` runs to 1002·L + 500
  await m.rotateIfDue()
  c.set(1002 * L)
  await m.rotateIfDue()
  t.equal(m.live().length, 2)
  t.equal(first.ohttpKey.destroyed, true)
  t.equal(m.lookup(first.keyId).status, 'expired')
  m.close()
})

t.test('concurrent rotateIfDue share one rotation; async factories work', async (t) => {
  const c = clock(START)
  const f = factory()
  let calls = 0
  const m = await createEpochManager({
    epochLengthMs: L,
    graceMs: GRACE,
    now: c.now,
    newOhttpKey: async (id) => {
      calls++
      await sleep(5)
      return f.newOhttpKey(id)
    },
    autoRotate: false,
  })
  c.set(1001 * L)
  const results = await Promise.all([m.rotateIfDue(), m.rotateIfDue(), m.rotateIfDue()])
  t.same(results, [true, true, true])
  t.equal(calls, 2, 'first epoch + one rotation')
  t.equal(m.current().number, 1001n)
  m.close()
})

t.test('a failing key factory keeps the current epoch and leaks no signing key', async (t) => {
  const c = clock(START)
  const f = factory()
  let fail = false
  const signing: { destroyed: boolean }[] = []
  const { createSigningKey } = await import('../enclave/keys.ts')
  const m = await createEpochManager({
    epochLengthMs: L,
    graceMs: GRACE,
    now: c.now,
    newOhttpKey: (id) => {
      if (fail) throw new Error('no entropy today')
      return f.newOhttpKey(id)
    },
    newSigningKey: () => {
      const k = createSigningKey()
      signing.push(k)
      return k
    },
    autoRotate: false,
  })
  const first = m.current()
  fail = true
  c.set(1001 * L)
  t.match(await rejection(m.rotateIfDue()), { message: 'no entropy today' })
  t.equal(m.current(), first)
  t.equal(signing.length, 2)
  t.equal(signing[1]!.destroyed, true, 'the new signing key was destroyed')
  fail = false
  t.equal(await m.rotateIfDue(), true, 'retry succeeds')
  m.close()

  const wrong = await rejection(createEpochManager({ epochLengthMs: L, graceMs: 0, now: c.now, newOhttpKey: (id) => f.newOhttpKey(id + 1), autoRotate: false }))
  t.equal(codeOf(wrong), 'ATTESTATION_OPTIONS_INVALID', 'a key with another key id is refused')
  t.equal(f.made.at(-1)!.destroyed, true, 'and destroyed')
})

t.test('graceMs 0 destroys the old epoch at rotation', async (t) => {
  const c = clock(START)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: 0, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  const first = m.current()
  c.set(1001 * L)
  await m.rotateIfDue()
  t.equal(first.ohttpKey.destroyed, true)
  t.equal(m.lookup(first.keyId).status, 'expired')
  m.close()
})

t.test('close destroys every key; the manager refuses afterwards', async (t) => {
  const c = clock(START)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: GRACE, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  c.set(1001 * L)
  await m.rotateIfDue()
  m.close()
  m.close()
  t.ok(f.made.every((k) => k.destroyed))
  for (const call of [() => m.current(), () => m.lookup(0), () => m.live()]) {
    const e = thrown(call)
    t.ok(e instanceof EnclaveError)
    t.equal(codeOf(e), 'ENCLAVE_CLOSED')
  }
  c.set(1002 * L)
  t.equal(await m.rotateIfDue(), false)
})

t.test('epochs print and serialise as public data only', async (t) => {
  const c = clock(START)
  const f = factory()
  const m = await createEpochManager({ epochLengthMs: L, graceMs: GRACE, now: c.now, newOhttpKey: f.newOhttpKey, autoRotate: false })
  const e = m.current()
  const json = JSON.stringify(e)
  t.same(JSON.parse(json), {
    number: '1000',
    keyId: 1000 % 256,
    signingAddress: e.signingKey.address,
    createdAt: new Date(START).toISOString(),
    expiresAt: new Date(1001 * L).toISOString(),
  })
  t.notMatch(json, CANARY)
  t.notMatch(inspect(e, { depth: 10, showHidden: true }), CANARY)
  t.notMatch(inspect(m.lookup(e.keyId), { depth: 10 }), CANARY)
  m.close()
})

t.test('options are checked', async (t) => {
  const f = factory()
  const base = { epochLengthMs: L, graceMs: GRACE, now: () => START, newOhttpKey: f.newOhttpKey, autoRotate: false }
  for (const [name, o] of [
    ['zero length', { ...base, epochLengthMs: 0 }],
    ['fractional length', { ...base, epochLengthMs: 1.5 }],
    ['negative grace', { ...base, graceMs: -1 }],
    ['grace longer than an epoch', { ...base, graceMs: L + 1 }],
    ['no clock', { ...base, now: undefined }],
    ['no factory', { ...base, newOhttpKey: undefined }],
  ] as const) {
    t.equal(codeOf(await rejection(createEpochManager(o as never))), 'ATTESTATION_OPTIONS_INVALID', name)
  }
  const m = await createEpochManager(base)
  t.equal(codeOf(thrown(() => m.lookup(256))), 'ATTESTATION_OPTIONS_INVALID', 'key id beyond one byte')
  m.close()
})

t.test("the manager's own timer rotates and destroys on the real clock", async (t) => {
  const f = factory()
  const changes: EpochChange<FakeKey>[] = []
  const m = await createEpochManager({ epochLengthMs: 40, graceMs: 20, now: Date.now, newOhttpKey: f.newOhttpKey, onChange: (c) => changes.push(c) })
  const first = m.current()
  await sleep(200)
  t.ok(changes.length >= 3, `rotated ${changes.length} times`)
  t.ok(m.current().number > first.number)
  t.equal(first.ohttpKey.destroyed, true, 'the first epoch is gone')
  t.ok(m.live().length <= 2)
  m.close()
  const n = changes.length
  await sleep(100)
  t.equal(changes.length, n, 'no rotation after close')
  t.ok(f.made.every((k) => k.destroyed))
})
