/**
 * Which tokenizer.json regex patterns are safe to hand to @huggingface/tokenizers, which compiles
 * them itself with JavaScript's backtracking RegExp. A backtracking engine takes exponential time
 * on `(a+)+$` and quadratic time on `a+b` (every start position re-reads the run of a's), so a
 * pattern passes only when its shape bounds the work at each start position by a constant:
 *
 * - an unbounded repeat (`*`, `+`, `{n,}`) stands only on one character (a literal, a class, an
 *   escape such as `\s` or `\p{L}`, or `.`) and only at the very end of an alternative, where the
 *   match can no longer fail once the repeat has started: the engine reads each run once;
 * - everything before it is bounded: at most MAX_PATHS ways to match, each reading at most a few
 *   characters (so `(a|a){30}` is refused as surely as `(a+)+`);
 * - no backreferences, subroutine calls, atomic groups, conditionals or possessive repeats.
 *
 * This admits the patterns ALBERT-family tokenizers use (` {2,}`, `\s+`, `\p{N}{1,3}`, literal
 * alternatives) and refuses the rest with the reason. The check reads the pattern as the
 * tokenizers library's Oniguruma dialect; it only needs its structure, not its exact character sets.
 */

/** Ways × characters read, per start position, beyond which a pattern is refused. */
export const MAX_PATH_WORK = 256
/** The largest count in a `{n,m}` repeat. */
export const MAX_REPEAT = 1000
/** Longest pattern accepted, in characters. */
export const MAX_PATTERN_CHARS = 1024
const MAX_GROUP_DEPTH = 32

type Node =
  | { kind: 'char' }
  | { kind: 'assert' }
  | { kind: 'group'; alts: Node[][]; look: boolean }
  | { kind: 'repeat'; node: Node; min: number; max: number; at: number }

class Refusal extends Error {}

const refuse = (why: string): never => {
  throw new Refusal(why)
}

class Parser {
  pos = 0
  depth = 0
  constructor(readonly src: string) {}

  get done(): boolean {
    return this.pos >= this.src.length
  }

  peek(k = 0): string {
    return this.src[this.pos + k] ?? ''
  }

  alternatives(): Node[][] {
    const alts: Node[][] = [this.sequence()]
    while (this.peek() === '|') {
      this.pos++
      alts.push(this.sequence())
    }
    return alts
  }

  sequence(): Node[] {
    const seq: Node[] = []
    while (!this.done && this.peek() !== '|' && this.peek() !== ')') {
      const atom = this.atom()
      if (atom) seq.push(this.quantified(atom))
    }
    return seq
  }

  /** `node` with the repeats that follow it. */
  quantified(node: Node): Node {
    const at = this.pos
    const q = this.quantifier()
    if (!q) return node
    if (node.kind === 'assert') refuse(`a repeat at offset ${at} applies to an anchor`)
    if (this.peek() === '?') this.pos++ // lazy: the same paths in another order
    if (this.quantifier() !== undefined || this.peek() === '+') refuse(`a repeat of a repeat at offset ${at} (nested or possessive quantifier)`)
    return { kind: 'repeat', node, min: q.min, max: q.max, at }
  }

  quantifier(): { min: number; max: number } | undefined {
    const c = this.peek()
    if (c === '*' || c === '+' || c === '?') {
      this.pos++
      return { min: c === '+' ? 1 : 0, max: c === '?' ? 1 : Infinity }
    }
    if (c !== '{') return undefined
    const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(this.src.slice(this.pos, this.pos + 24))
    if (!m || (m[1] === '' && (m[3] ?? '') === '')) return undefined // a literal '{' (Oniguruma)
    const min = m[1] === '' ? 0 : Number(m[1])
    const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3])
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) refuse(`a repeat count above ${MAX_REPEAT} at offset ${this.pos}`)
    if (max < min) refuse(`a repeat {${min},${max}} at offset ${this.pos} whose maximum is below its minimum`)
    this.pos += m[0].length
    return { min, max }
  }

  /** One atom, or undefined for an inline flag group such as `(?i)` that matches nothing. */
  atom(): Node | undefined {
    const at = this.pos
    const c = this.peek()
    if (c === '*' || c === '+' || c === '?') refuse(`nothing to repeat at offset ${at}`)
    if (c === '{' && this.quantifier()) refuse(`nothing to repeat at offset ${at}`)
    if (c === '(') return this.group()
    if (c === '[') {
      this.characterClass()
      return { kind: 'char' }
    }
    if (c === '\\') return this.escape()
    this.pos += this.src.codePointAt(this.pos)! > 0xffff ? 2 : 1
    if (c === '^' || c === '$') return { kind: 'assert' }
    return { kind: 'char' }
  }

  group(): Node | undefined {
    const at = this.pos
    const rest = this.src.slice(this.pos, this.pos + 40)
    let look = false
    let open: number
    if (!rest.startsWith('(?')) open = 1
    else if (/^\(\?(?:[:=!]|<[=!])/.test(rest)) {
      look = rest[2] !== ':'
      open = rest[2] === '<' ? 4 : 3
    } else if (/^\(\?(?:P?<[A-Za-z_]\w*>|'[A-Za-z_]\w*')/.test(rest)) {
      open = rest.indexOf(rest[2] === "'" ? "'" : '>', 3) + 1
    } else {
      const flags = /^\(\?[imsx]*(?:-[imsx]*)?([:)])/.exec(rest)
      if (!flags) refuse(`an unsupported group '${rest.slice(0, 3)}' at offset ${at} (atomic groups, conditionals, comments and subroutines are refused)`)
      this.pos += flags![0].length
      if (flags![1] === ')') return undefined
      open = 0
    }
    this.pos += open
    if (++this.depth > MAX_GROUP_DEPTH) refuse(`groups nested more than ${MAX_GROUP_DEPTH} deep`)
    const alts = this.alternatives()
    this.depth--
    if (this.peek() !== ')') refuse(`the group opened at offset ${at} is not closed`)
    this.pos++
    return { kind: 'group', alts, look }
  }

  /** `[...]`, Oniguruma's nested classes included: one character whatever it holds. */
  characterClass(): void {
    const at = this.pos
    let depth = 0
    while (!this.done) {
      const c = this.peek()
      if (c === '\\') this.pos += 2
      else {
        this.pos++
        if (c === '[') depth++
        else if (c === ']' && --depth === 0) return
      }
    }
    refuse(`the character class opened at offset ${at} is not closed`)
  }

  escape(): Node {
    const at = this.pos
    const c = this.peek(1)
    if (c === '') refuse('the pattern ends in a lone backslash')
    this.pos += 2
    if (/[1-9]/.test(c) || c === 'k') refuse(`a backreference ('\\${c}') at offset ${at}, which no linear-time engine can match`)
    if (c === 'g') refuse(`a subroutine call ('\\g') at offset ${at}`)
    if ('bBAzZG'.includes(c)) return { kind: 'assert' }
    if (c === 'p' || c === 'P' || c === 'x' || c === 'u') {
      if (this.peek() === '{') {
        const close = this.src.indexOf('}', this.pos)
        if (close < 0 || close - this.pos > 64) refuse(`an unterminated '\\${c}{' at offset ${at}`)
        this.pos = close + 1
      } else if (c === 'p' || c === 'P') this.pos++
      else this.pos += Math.min(c === 'x' ? 2 : 4, /^[0-9A-Fa-f]*/.exec(this.src.slice(this.pos, this.pos + 4))![0].length)
      return { kind: 'char' }
    }
    if (c === 'c') {
      this.pos++
      return { kind: 'char' }
    }
    if ('dDsSwWhHtnrfvae0'.includes(c) || !/[A-Za-z]/.test(c)) return { kind: 'char' }
    return refuse(`an unsupported escape '\\${c}' at offset ${at}`)
  }
}

/** Ways to match and characters read, for a bounded piece of pattern. */
interface Cost {
  paths: number
  width: number
}

function sequenceCost(seq: Node[], tail: boolean): Cost {
  let paths = 1
  let width = 0
  seq.forEach((node, i) => {
    const c = nodeCost(node, tail && i === seq.length - 1)
    paths *= c.paths
    width += c.width
  })
  return { paths, width }
}

function alternativesCost(alts: Node[][], tail: boolean): Cost {
  let paths = 0
  let width = 0
  for (const alt of alts) {
    const c = sequenceCost(alt, tail)
    paths += c.paths
    width = Math.max(width, c.width)
  }
  return { paths, width }
}

/** `tail`: the node ends its alternative (nothing after it can fail). */
function nodeCost(node: Node, tail: boolean): Cost {
  switch (node.kind) {
    case 'char':
      return { paths: 1, width: 1 }
    case 'assert':
      return { paths: 1, width: 0 }
    case 'group':
      return alternativesCost(node.alts, tail && !node.look)
    case 'repeat': {
      if (node.max === Infinity) {
        if (node.node.kind !== 'char') refuse(`an unbounded repeat at offset ${node.at} applies to a group; '+', '*' and '{n,}' may only repeat one character`)
        if (!tail) refuse(`an unbounded repeat at offset ${node.at} is followed by more pattern; '+', '*' and '{n,}' may only end an alternative`)
        return { paths: 1, width: node.min } // the mandatory part; the greedy rest cannot fail
      }
      const inner = nodeCost(node.node, false)
      let paths = 0
      for (let k = node.min; k <= node.max && paths <= MAX_PATH_WORK; k++) paths += inner.paths ** k
      return { paths, width: node.max * inner.width }
    }
  }
}

/**
 * Why `pattern` could take more than linear time (or cannot be read), or undefined when it is safe
 * to run with a backtracking engine.
 */
export function superLinearReason(pattern: string): string | undefined {
  if (pattern.length > MAX_PATTERN_CHARS) return `${pattern.length} characters long, more than ${MAX_PATTERN_CHARS}`
  try {
    const p = new Parser(pattern)
    const alts = p.alternatives()
    if (!p.done) refuse(`an unmatched ')' at offset ${p.pos}`)
    const cost = alternativesCost(alts, true)
    const work = cost.paths * (cost.width + 1)
    if (!(work <= MAX_PATH_WORK)) {
      refuse(`up to ${cost.paths > 1e6 ? 'millions of' : cost.paths} ways to match at each position, reading up to ${cost.width} characters each (at most ${MAX_PATH_WORK} ways × characters)`)
    }
    return undefined
  } catch (e) {
    if (e instanceof Refusal) return e.message
    throw e
  }
}
