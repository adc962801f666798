/**
 * albertkit's --help (package.json `oclif.helpClass`): oclif's help with flags shown in groups by
 * purpose, in a fixed order; tables after the description (a command's static `helpTables`); and
 * an EXIT CODES section listing each command's own codes and their causes (its static
 * `exitCodes`). A help subject that is no command is the same usage error as an unknown command
 * (hooks/command-not-found.ts).
 *
 * Every --help goes through this module and oclif.manifest.json alone, without importing any
 * command: keep its imports to @oclif/core.
 */
import { CommandHelp, Help } from '@oclif/core/help'
import type { Command, Interfaces } from '@oclif/core'

/** Exit codes as a command's --help lists them: each code with its causes for that command. */
export type ExitCodeRows = readonly (readonly [code: number, causes: string])[]

/** A table a command's --help shows after its description (a command's static `helpTables`). */
export interface HelpTable {
  header: string
  rows: readonly (readonly [name: string, text: string])[]
}

/** Flag groups (a flag's `helpGroup`), in the order --help shows them. */
export const FLAG_GROUPS = ['OUTPUT', 'CHECKPOINT', 'MODEL', 'GRAPH', 'QUANTIZATION', 'VERIFICATION', 'EVALUATION', 'RECIPE'] as const
export type FlagGroup = (typeof FLAG_GROUPS)[number]

/** Flags every command has (base.ts): last in their group, after the command's own. */
const SHARED_FLAGS = ['json', 'quiet']

/** Summaries for commands of oclif's plugins that come without one. */
const SUMMARIES: Record<string, string> = {
  version: 'Print the version of <%= config.bin %>; --verbose adds Node.js, the OS and the plugins.',
}

/**
 * oclif renders every help string as an EJS template, compiling each one, though only a few hold
 * `<%= ... %>`: plain strings are returned as they are (rendering convert's help took 35-55 ms cold,
 * now 23-33).
 */
function renderOnlyTemplates(formatter: { render: (input: string) => string }): void {
  const render = formatter.render
  formatter.render = (input: string) => (input.includes('<%') ? render(input) : input)
}

class AlbertkitCommandHelp extends CommandHelp {
  constructor(...args: ConstructorParameters<typeof CommandHelp>) {
    super(...args)
    renderOnlyTemplates(this)
  }

  protected override groupFlags(flags: Command.Flag.Any[]): ReturnType<CommandHelp['groupFlags']> {
    const { flagGroups, mainFlags } = super.groupFlags(flags)
    const rank = (g: string) => {
      const i = (FLAG_GROUPS as readonly string[]).indexOf(g)
      return i < 0 ? FLAG_GROUPS.length : i
    }
    // Within a group: flags with a short form first (oclif's table loses the indent of a first row
    // without one), then the command's own flags before the shared ones, each in declared order.
    const place = (f: Command.Flag.Any) => (f.char ? 0 : 2) + (SHARED_FLAGS.includes(f.name) ? 1 : 0)
    const ordered: Record<string, Command.Flag.Any[]> = {}
    for (const name of Object.keys(flagGroups).sort((a, b) => rank(a) - rank(b))) {
      ordered[name] = [...flagGroups[name]!].sort((a, b) => place(a) - place(b))
    }
    return { flagGroups: ordered, mainFlags }
  }

  protected override sections(): ReturnType<CommandHelp['sections']> {
    const cmd = this.command as { exitCodes?: ExitCodeRows; helpTables?: readonly HelpTable[] }
    const table = (header: string, rows: readonly (readonly [string | number, string])[]) => ({
      header,
      generate: () => [{ header, body: rows.map(([left, right]): [string, string] => [String(left), right]) }],
    })
    const sections = super.sections()
    // Tables that explain the description (optimize's passes) follow it; exit codes come last.
    const after = sections.findIndex((s) => s.header === 'DESCRIPTION') + 1
    sections.splice(after, 0, ...(cmd.helpTables ?? []).map((t) => table(t.header, t.rows)))
    const codes = cmd.exitCodes
    if (codes?.length) {
      sections.push({
        header: 'EXIT CODES',
        generate: () => {
          const list = this.renderList(codes.map(([code, causes]): [string, string] => [String(code), causes]), { indentation: 2, stripAnsi: this.opts.stripAnsi })
          return `${list}\n\nA code means the same in every command; docs/exit-codes.md has the details.`
        },
      })
    }
    return sections
  }
}

export default class AlbertkitHelp extends Help {
  protected override CommandHelpClass = AlbertkitCommandHelp

  constructor(config: Interfaces.Config, opts: Partial<Interfaces.HelpOptions> = {}) {
    // Flags in the order the commands declare them (by purpose), not alphabetically.
    super(config, { flagSortOrder: 'none', ...opts })
    renderOnlyTemplates(this)
  }

  override async showHelp(argv: string[]): Promise<void> {
    // `help conver` and `conver --help` are the unknown command they name: one line, exit code 2.
    const subject = argv.find((a) => !a.startsWith('-'))
    if (subject !== undefined && !this.config.findCommand(subject) && !this.config.findTopic(subject)) {
      await this.config.runHook('command_not_found', { argv: argv.filter((a) => a !== subject), id: subject })
    }
    return super.showHelp(argv)
  }

  protected override summary(c: Command.Loadable): string | undefined {
    return super.summary(c) ?? (SUMMARIES[c.id] !== undefined ? this.render(SUMMARIES[c.id]!) : undefined)
  }
}
