/**
 * HTTP-date (RFC 9110 §5.6.7), for the `date` field every inner request
 * carries (RFC 9458 §6.5: the gateway bounds its replay window by it).
 *
 * Senders must write IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, what
 * `Date#toUTCString()` writes); recipients "MUST accept all three HTTP-date
 * formats", so the two obsolete ones are read too: RFC 850
 * (`Sunday, 06-Nov-94 08:49:37 GMT`, two-digit year per §5.6.7's 50-year
 * rule) and asctime (`Sun Nov  6 08:49:37 1994`). Anything else — other
 * zones, out-of-range fields, a weekday that does not match — is no date.
 * No `Date.parse`: its leniency is implementation-defined.
 */

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const LONG_DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']

const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/
const RFC850 = /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/
const ASCTIME = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/

function build(weekday: number, day: number, month: number, year: number, h: number, m: number, s: number): number | undefined {
  // §5.6.7: hour 00-23, minute 00-59, second 00-60 (a leap second reads as the next second's start).
  if (h > 23 || m > 59 || s > 60 || day < 1) return undefined
  const t = Date.UTC(year, month, day, h, m, Math.min(s, 59)) + (s === 60 ? 1000 : 0)
  const d = new Date(t - (s === 60 ? 1000 : 0))
  if (d.getUTCDate() !== day || d.getUTCMonth() !== month || d.getUTCDay() !== weekday) return undefined
  return t
}

/**
 * The time an HTTP-date names, in ms since the Unix epoch, or undefined for
 * anything that is not one. `nowMs` resolves RFC 850's two-digit year.
 */
export function parseHttpDate(value: string, nowMs: number = Date.now()): number | undefined {
  if (typeof value !== 'string' || value.length > 64) return undefined
  let m = IMF_FIXDATE.exec(value)
  if (m) return build(DAYS.indexOf(m[1]!), Number(m[2]), MONTHS.indexOf(m[3]!), Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7]))
  m = RFC850.exec(value)
  if (m) {
    // §5.6.7: a two-digit year more than 50 years in the future is the most recent past year with those digits.
    const thisYear = new Date(nowMs).getUTCFullYear()
    let year = thisYear - (thisYear % 100) + Number(m[4])
    if (year > thisYear + 50) year -= 100
    return build(LONG_DAYS.indexOf(m[1]!), Number(m[2]), MONTHS.indexOf(m[3]!), year, Number(m[5]), Number(m[6]), Number(m[7]))
  }
  m = ASCTIME.exec(value)
  if (m) return build(DAYS.indexOf(m[1]!), Number(m[3]!.trim()), MONTHS.indexOf(m[2]!), Number(m[7]), Number(m[4]), Number(m[5]), Number(m[6]))
  return undefined
}

/** IMF-fixdate (RFC 9110 §5.6.7) of a time in ms. */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString()
}
