/** "Did you mean": the known names closest to a mistyped one, for unknown commands and flags. */
import { distance } from 'fastest-levenshtein'

/**
 * The names nearest to `typed` by edit distance (Levenshtein), when they are near enough to be a
 * typo: one edit in three letters, rounded up, so that two swapped letters (two edits) count from
 * four letters on (`forse` and `froce` find `force`, `hepl` finds `help`, `out` finds nothing in
 * `top1`). Ties all come back, in the order given; none when nothing is close.
 */
export function closest(typed: string, names: readonly string[]): string[] {
  const limit = Math.max(1, Math.ceil(typed.length / 3))
  let best = Infinity
  let found: string[] = []
  for (const name of names) {
    const d = distance(typed, name)
    if (d > limit || d > best) continue
    if (d < best) [best, found] = [d, []]
    found.push(name)
  }
  return found
}

/** `did you mean X?`, `X or Y?`, `X, Y or Z?`; empty when there is nothing to suggest. */
export function didYouMean(suggestions: readonly string[]): string {
  if (suggestions.length === 0) return ''
  const last = suggestions[suggestions.length - 1]!
  return `did you mean ${suggestions.length === 1 ? last : `${suggestions.slice(0, -1).join(', ')} or ${last}`}?`
}
