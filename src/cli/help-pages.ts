/**
 * Help pages rendered when albertkit is built (scripts/manifest.js writes help-pages.json beside
 * oclif.manifest.json): the root page and each command's page, exactly as oclif prints them to a
 * pipe at its default width of 80 columns. A `--help` whose output goes to a pipe or a file (a
 * script, CI, `| less`) prints the stored page without loading oclif, which alone costs about
 * 0.1 s of CPU; a terminal (another width, colour) or anything the build did not render gets
 * oclif's help as before. test/help.test.ts holds the stored pages to what oclif renders.
 *
 * Keep this module's imports to node: it runs before anything else is loaded.
 */
import fs from 'node:fs'

export const HELP_PAGES_FILE = 'help-pages.json'

export interface HelpPages {
  /** the package version the pages were rendered for */
  version: string
  /** page key (helpPageKey) → the page's exact stdout */
  pages: Record<string, string>
}

/**
 * The stored page a command line asks for: '' for the root page (no arguments, `--help`, `-h`,
 * `help`), the command id for `ID --help`, `ID -h`, `help ID`; undefined for anything else.
 */
export function helpPageKey(args: readonly string[]): string | undefined {
  const isHelp = (a: string | undefined) => a === '--help' || a === '-h'
  if (args.length === 0 || (args.length === 1 && (isHelp(args[0]) || args[0] === 'help'))) return ''
  if (args.length !== 2) return undefined
  const [a, b] = args as [string, string]
  if (a === 'help' && /^[a-z][a-z-]*$/.test(b)) return b
  if (isHelp(b) && /^[a-z][a-z-]*$/.test(a)) return a
  return undefined
}

/** Whether this process prints as the build rendered the pages: stdout not a terminal, no width or colour forced. */
export function rendersAsBuilt(env: NodeJS.ProcessEnv = process.env): boolean {
  return !process.stdout.isTTY && !env.OCLIF_COLUMNS && !env.FORCE_COLOR && !env.ALBERTKIT_LIVE_HELP
}

/** The stored page for `args`, if the pages file (for this `version`) has it and this process prints as the build did. */
export function storedHelpPage(file: string, version: string, args: readonly string[]): string | undefined {
  const key = helpPageKey(args)
  if (key === undefined || !rendersAsBuilt()) return undefined
  let stored: HelpPages
  try {
    stored = JSON.parse(fs.readFileSync(file, 'utf8')) as HelpPages
  } catch {
    return undefined
  }
  if (stored.version !== version) return undefined
  const page = stored.pages[key]
  return typeof page === 'string' ? page : undefined
}
