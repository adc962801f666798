/** Figures as the terminal shows them. */

/** `1.23 MB`, `18.5 kB`, `12 B`. */
export function formatBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`
  return `${n} B`
}
