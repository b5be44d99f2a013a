#!/usr/bin/env node
/**
 * Entry point of the release bundle (scripts/build-release.ts): the whole
 * `cgw` command in one ESM file, run by plain node without tsx.
 */
import { main } from '../../bin/cgw.ts'

process.exitCode = await main(process.argv.slice(2))
