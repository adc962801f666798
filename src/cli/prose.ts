/**
 * Help text as a command's source writes it: prose, examples as a shell session (and exit-code
 * causes, exit-codes.ts). Plain functions of strings that import nothing at run time, so that any
 * process loads them cheaply; help.ts renders the result.
 */
import type { Command } from '@oclif/core'

/**
 * Help text written in a command's source as prose: paragraphs apart by a blank line, each wrapped
 * freely (its lines are joined by one space, as oclif wraps to the terminal itself). Leading
 * indentation and the blank lines around the text are dropped.
 */
export function prose(text: string): string {
  return paragraphs(text)
    .map((lines) => lines.join(' '))
    .join('\n\n')
}

/** The text's paragraphs (split at blank lines), each as its trimmed lines. */
export function paragraphs(text: string): string[][] {
  const out: string[][] = [[]]
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line) out[out.length - 1]!.push(line)
    else if (out[out.length - 1]!.length) out.push([])
  }
  return out.filter((p) => p.length)
}

/**
 * A command's examples for its --help, written as a shell session: each paragraph is one example,
 * its command line last (what follows `albertkit <command>`), and the lines before it, if any,
 * what it shows.
 */
export function examples(command: string, session: string): Command.Example[] {
  return paragraphs(session).map((lines) => {
    const line = `<%= config.bin %> ${command} ${lines[lines.length - 1]}`
    return lines.length === 1 ? line : { description: lines.slice(0, -1).join(' '), command: line }
  })
}
