/** factorization-check: placeholder until the pass lands. */
import type { Pass } from './pass.js'

export const factorizationCheck: Pass = {
  name: 'factorization-check',
  description: 'report the embedding factorization; warn on (and with refactor, undo) a folded V×H table',
  run() {
    throw new Error('factorization-check is not implemented yet')
  },
}
