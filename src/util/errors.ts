/**
 * Errors a user can act on: one line, naming the file and the problem.
 * Commands print `message` alone (no stack) and exit with code 3 (UsageError: 2; see docs/exit-codes.md).
 */
export class UserError extends Error {
  override name = 'UserError'
}

/** A UserError about how the command was called (a flag value, a recipe file): exit code 2, not 3. */
export class UsageError extends UserError {
  override name = 'UsageError'
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
