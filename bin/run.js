#!/usr/bin/env node
// The command runs in a child process this one supervises, so that Ctrl-C always stops it
// (see src/cli/supervisor.ts); help and version run here.
import { main } from '../dist/src/cli/supervisor.js'

await main(import.meta.url)
