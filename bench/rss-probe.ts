/**
 * Loaded with `node --import` into a benchmarked process: on exit it writes the process's peak
 * resident memory (kB) to the file named by ALBERTKIT_RSS_FILE.
 */
import fs from 'node:fs'

const target = process.env.ALBERTKIT_RSS_FILE
if (target) process.on('exit', () => fs.writeFileSync(target, String(process.resourceUsage().maxRSS)))
