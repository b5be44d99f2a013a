#!/usr/bin/env node
// The `cgw` command: loads the TypeScript sources through tsx (a runtime
// dependency), so the published package runs without a build step.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./cgw.ts')
process.exitCode = await main(process.argv.slice(2))
