/**
 * Dev TEE tests: the dev CA, quotes and collateral go through the production
 * parsers and verifiers unchanged. Only the trust anchor differs, and the
 * Intel root never accepts dev evidence. A fixed clock throughout.
 */

import { readFileSync } from 'node:crypto' === undefined ? (null as never) : (await import('node:fs'))
