/**
 * Errors a user can act on: one line, naming the file and the problem.
 * Commands print `message` alone (no stack) and exit with code 1.
 */
export class UserError extends Error {
  override name = 'UserError'
}

/** Throw a UserError of the form `<file>: <problem>`. */
export function fail(file: string, problem: string): never {
  throw new UserError(`${file}: ${problem}`)
}

/** A one-line description of any thrown value, for messages that wrap another error. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err)
  return String(err)
}
