/** Text that came from a file, made safe for a one-line message: control characters escaped, length capped. */
export function printable(text: string, max = 200): string {
  const safe = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
  return safe.length > max ? `${safe.slice(0, max)}…` : safe
}
