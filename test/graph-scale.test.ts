/**
 * Graph algorithms in linear (or n·log n) time, and constant folding with bounded growth. The
 * graph IR's edits (node list, use lists, names) are checked against a plain-array model of what
 * they must do; the CLI runs under bounds on time and peak memory (test/support/bounded.ts) on
 * graphs that took minutes or gigabytes before: tens of thousands of unnamed nodes, many
 * same-shaped constants, thousands of outputs, folding chains, a million-node graph (a clear
 * limit), fold bombs, and a 1000-layer ALBERT built in seconds.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Graph, Model, Node, type Value } from '../src/ir/graph.js'
import { foldConstants } from '../src/passes/fold-constants.js'
import { passContext } from '../src/passes/pass.js'
import { Tensor } from '../src/ir/tensor.js'
import { DataType } from '../src/ir/dtype.js'
import { readModelFile } from '../src/onnx/file.js'
import { MAX_GRAPH_ENTRIES } from '../src/onnx/decode.js'
import { fixtureDir, tempDir } from './support/helpers.js'
import { cpuTimed, figures, runBounded, runCommandBounded } from './support/bounded.js'
import { foldBombModel, writeChainModel, writePiecesTo } from './support/big-graph.js'

const work = tempDir()

/** The same nodes in the same order (by identity). */
function same(got: readonly Node[], want: readonly Node[], what: string): void {
  assert.equal(got.length, want.length, what)
  got.forEach((n, i) => assert.ok(n === want[i], `${what}: position ${i}`))
}

function rng(seed: number) {
  let s = seed >>> 0
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % n
  }
}

describe('graph IR edits', () => {
  it('node list, use lists and names stay what plain arrays would give, through 3000 random edits', () => {
    for (const seed of [1, 2, 3]) {
      const next = rng(seed)
      const g = new Graph()
      // The reference: the node order and each value's readers as arrays, edited the slow way.
      const order: Node[] = []
      const readers = new Map<Value, Node[]>()
      const values: Value[] = []
      const readersOf = (v: Value) => readers.get(v) ?? (readers.set(v, []), readers.get(v)!)
      const dropOne = (arr: Node[], n: Node) => {
        const i = arr.indexOf(n)
        if (i >= 0) arr.splice(i, 1)
      }
      // A few values read by many nodes, so that their use lists pass the indexed size.
      for (let i = 0; i < 6; i++) values.push(g.addInitializer(g.uniqueName('w'), Tensor.scalarFloat(i)))
      const pick = () => values[next(2) ? next(6) : next(values.length)]!
      const live = () => order[next(order.length)]
      for (let step = 0; step < 3000; step++) {
        const op = next(10)
        if (op < 4 || order.length < 3) {
          const inputs = [pick(), pick(), next(4) === 0 ? null : pick()]
          const n = g.addNode('Add', inputs, ['v'])
          order.push(n)
          for (const v of inputs) if (v) readersOf(v).push(n)
          values.push(n.outputs[0]!)
        } else if (op === 4) {
          const n = live()!
          for (const v of n.inputs) if (v) dropOne(readersOf(v), n)
          dropOne(order, n)
          g.removeNode(n)
        } else if (op === 5) {
          const n = live()!
          const k = next(n.inputs.length)
          const v = next(3) === 0 ? null : pick()
          const old = n.inputs[k]
          n.setInput(k, v)
          if (old) dropOne(readersOf(old), n)
          if (v) readersOf(v).push(n)
        } else if (op === 6) {
          const before = live()!
          const n = g.addNode('Relu', [pick()], ['r'])
          readersOf(n.inputs[0]!).push(n)
          values.push(n.outputs[0]!)
          g.moveLastBefore(before)
          order.splice(order.indexOf(before), 0, n)
        } else if (op === 7) {
          const old = live()!
          const inputs = [pick()]
          const oldInputs = [...old.inputs]
          const n = g.replaceNode(old, 'Neg', inputs)
          readersOf(inputs[0]!).push(n)
          for (const v of oldInputs) if (v) dropOne(readersOf(v), old)
          order[order.indexOf(old)] = n
        } else if (op === 8) {
          // As if each slot reading `from` were set to `to` one at a time, readers in order.
          const from = pick()
          const to = pick()
          const list = readersOf(from)
          const done = new Set<Node>()
          for (const n of [...list]) {
            // Once `to` differs, a reader met again has no slot left reading `from`.
            if (from !== to && done.has(n)) continue
            done.add(n)
            n.inputs.forEach((v) => {
              if (v !== from) return
              dropOne(list, n)
              readersOf(to).push(n)
            })
          }
          g.replaceAllUses(from, to)
        } else {
          const n = live()!
          const at = next(5) === 0 ? undefined : live()!
          g.insertNode(n, at)
          if (n !== at) {
            dropOne(order, n)
            if (at) order.splice(order.indexOf(at), 0, n)
            else order.push(n)
          }
        }
        if (step % 97 === 0 || step === 2999) {
          same(g.nodes, order, `node order, seed ${seed} step ${step}`)
          for (const v of values) same(v.consumers, readersOf(v), `readers of ${v.name}, seed ${seed} step ${step}`)
        }
      }
      assert.ok(Math.max(...values.slice(0, 6).map((v) => v.consumers.length)) > 64, 'some use lists are long')
    }
  })

  it('names: uniqueName and uniqueNodeName give the first free suffix, in constant time each', () => {
    const g = new Graph()
    g.addValue('x')
    g.addValue('x_2')
    assert.equal(g.uniqueName('x'), 'x_1')
    g.addValue('x_1')
    assert.equal(g.uniqueName('x'), 'x_3')
    g.values.delete('x')
    assert.equal(g.uniqueName('x'), 'x', 'a deleted name is free again')
    const names = Array.from({ length: 5 }, () => g.uniqueNodeName('/layer/MatMul'))
    assert.deepEqual(names, ['/layer/MatMul', '/layer/MatMul_1', '/layer/MatMul_2', '/layer/MatMul_3', '/layer/MatMul_4'])
    const { cpuMs } = cpuTimed(() => {
      for (let i = 0; i < 100_000; i++) g.uniqueNodeName('/layer/Add')
      for (let i = 0; i < 100_000; i++) g.newValue('/layer/Add')
    })
    assert.ok(cpuMs < 3000, 'was quadratic: 200,000 names took minutes')
  })

  it('toposort is stable, depth first, and names a node on a cycle', () => {
    const g = new Graph()
    const x = g.addValue('x')
    g.inputs.push(x)
    const a = g.addNode('Relu', [x], ['a'])
    const b = g.addNode('Neg', [a.outputs[0]!], ['b'])
    const c = g.addNode('Add', [a.outputs[0]!, b.outputs[0]!], ['c'])
    g.nodes = [c, b, a]
    g.toposort()
    assert.deepEqual(g.nodes, [a, b, c])
    a.setInput(0, c.outputs[0]!)
    assert.throws(() => g.toposort(), /the graph has a cycle through/)
  })
})

/** Write a chain model into the work folder; returns its path. */
function chain(name: string, o: Parameters<typeof writeChainModel>[1]): string {
  const file = path.join(work, name)
  writeChainModel(file, o)
  return file
}

describe('optimize on large graphs (bounded time and memory)', () => {
  it('30,000 unnamed nodes, 7,500 same-shaped 2-D constants, 7,500 outputs and twin nodes: default passes in seconds', async () => {
    // Was 22 s of CPU (dedup 10.8 s: every pair of same-shaped matrices compared, outputs
    // rescanned per merge; sort-and-name 9.8 s: names searched from _0 for every node); now 1.8 s.
    const model = chain('wide.onnx', { nodes: 30_000, named: false, constantDims: [2, 2], twins: true, allOutputs: true })
    const out = path.join(work, 'wide-out.onnx')
    const r = await runBounded(['optimize', model, '-o', out, '--verbose'], { cpu: 12, mb: 300 })
    assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${figures(r)})`)
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /^dedup .*merged 7487, transposedMerged 0, nodesMerged 7500,/m)
    assert.match(r.stdout, /^sort-and-name .*renamed 22500,/m)
    const m = readModelFile(out)
    assert.equal(m.graph.nodes.length, 22_500)
    assert.equal(m.graph.outputs.length, 7500)
    assert.equal(new Set(m.graph.nodes.map((n) => n.name)).size, 22_500, 'unique names')
    assert.equal(m.graph.nodes[1]!.name, 'Add_1')
  })

  it('a 30,000-node chain on one shared constant folds away, and dead readers of it go', async () => {
    // Each fold or removal takes a reader off the shared constant's use list: a linear search and
    // splice per reader before; the node list's indexOf + splice per removed node likewise.
    const model = chain('fold.onnx', { nodes: 30_000, constantStart: true, second: 'Neg', distinctConstants: 1, deadEvery: 1 })
    const out = path.join(work, 'fold-out.onnx')
    const r = await runBounded(['optimize', model, '-o', out, '--verbose'], { cpu: 12, mb: 300 })
    assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${figures(r)})`)
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /^dedup .*nodesMerged 9999,/m)
    assert.match(r.stdout, /^fold-constants .*nodesFolded 19999\b/m)
    assert.equal(readModelFile(out).graph.nodes.length, 1)
  })

  it(`a 1,000,000-node graph is refused before it is built: one line naming the limit (${MAX_GRAPH_ENTRIES.toLocaleString('en-US')} entries), exit 3`, async () => {
    const model = chain('million.onnx', { nodes: 1_000_000, distinctConstants: 13 })
    const out = path.join(work, 'million-out.onnx')
    const r = await runBounded(['optimize', model, '-o', out], { cpu: 20, mb: 600 })
    assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${figures(r)})`)
    assert.equal(r.status, 3)
    assert.equal(
      r.stderr,
      `Error: ${model}: the graph is too large: 1,000,000 nodes, 13 initializers, 2 inputs and outputs, 0 value_info ` +
        '(1,000,015 entries, subgraphs included); albertkit reads at most 1,000,000\n',
    )
    assert.ok(!fs.existsSync(out))
    fs.rmSync(model)
  })
})

describe('constant folding with bounded growth', () => {
  for (const [kind, n, repeat, grown] of [
    ['gather', 65_536, 1024, '268.4 MB from 270.3 kB'],
    ['concat', 65_536, 2000, '524.3 MB from 262.1 kB'],
  ] as const) {
    it(`a ${kind} of one 256 kB constant ${repeat} times stays unfolded, with one warning (was ${kind === 'gather' ? '268 MB out, 1.4 GB, 34 s' : '3.4 GB, 92 s'})`, async () => {
      const model = path.join(work, `${kind}-bomb.onnx`)
      const size = writePiecesTo(model, foldBombModel(kind, n, repeat))
      assert.ok(size < 300_000)
      const out = path.join(work, `${kind}-bomb-out.onnx`)
      const r = await runBounded(['optimize', model, '-o', out], { cpu: 5, mb: 300 })
      assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${figures(r)})`)
      assert.equal(r.status, 0, r.stderr)
      const op = kind === 'gather' ? 'Gather' : 'Concat'
      assert.ok(
        r.stderr.includes(
          `warning: fold-constants: left ${op} 'bomb' unfolded: it would make ${grown} of constants ` +
            '(folding stops at ×2 growth past 64 kB, 16 MB a result, 64 MB in all; pass option foldLarge lifts this)\n',
        ),
        r.stderr,
      )
      assert.ok(fs.statSync(out).size < 300_000, 'the output is as small as the input')
    })
  }

  it('small growth still folds (shape arithmetic), and foldLarge folds past the limits', async () => {
    const make = () => {
      const g = new Graph()
      const x = g.addValue('x')
      x.setTensorType(DataType.FLOAT, [8, 5000])
      g.inputs.push(x)
      const row = g.addInitializer('row', Tensor.fromFloat32([1, 5000], new Float32Array(5000).fill(1)))
      const ids = g.addInitializer('ids', Tensor.fromInt64([8], [0, 0, 0, 0, 0, 0, 0, 0]))
      const shape = g.addInitializer('shape', Tensor.fromInt64([1], [4]))
      const gathered = g.addNode('Gather', [row, ids], ['gathered'], { name: 'g' }).outputs[0]!
      const filled = g.addNode('ConstantOfShape', [shape], ['filled'], { name: 'c' }).outputs[0]!
      const sum = g.addNode('Add', [x, gathered], ['sum']).outputs[0]!
      g.addNode('Mul', [sum, filled], ['y'])
      g.outputs.push(g.values.get('y')!)
      return new Model(g)
    }
    const limited = make()
    const warnings: string[] = []
    const r = foldConstants.run(limited, passContext({}, { warn: (m) => warnings.push(m) })) as { stats: Record<string, number> }
    assert.equal(r.stats.nodesFolded, 1, 'ConstantOfShape (16 bytes) folds; the 160 kB Gather does not')
    assert.equal(warnings.length, 1)
    assert.match(warnings[0]!, /^fold-constants: left Gather 'g' unfolded: it would make 160 kB from 20.1 kB of constants/)
    const large = make()
    const r2 = foldConstants.run(large, passContext({ foldLarge: true })) as { stats: Record<string, number> }
    assert.equal(r2.stats.nodesFolded, 2)
    assert.deepEqual(large.graph.values.get('gathered')!.const!.dims, [8, 5000])
  })
})

describe('building ALBERT', () => {
  it('1000 layers build in seconds (names were searched through the whole graph: over 60 s)', async () => {
    const dist = path.dirname(fileURLToPath(import.meta.url))
    const url = (rel: string) => new URL(rel, import.meta.url).href
    const script = `
      import { openCheckpoint } from '${url('../src/checkpoint/index.js')}'
      import { buildAlbert } from '${url('../src/builder/albert.js')}'
      import { resolveTask } from '${url('../src/checkpoint/task.js')}'
      const ckpt = openCheckpoint(${JSON.stringify(fixtureDir('albert-model'))})
      const config = { ...ckpt.config, numHiddenLayers: 1000 }
      const task = resolveTask(config, undefined, ckpt.configFile)
      const { model } = buildAlbert(config, ckpt.weights, { task, where: ckpt.dir, configFile: ckpt.configFile })
      process.stdout.write(String(model.graph.nodes.length))
    `
    const r = await runCommandBounded(process.execPath, ['--input-type=module', '-e', script], { cpu: 15, mb: 400, cwd: dist })
    assert.equal(r.killed, undefined, `stopped at the ${r.killed} bound (${figures(r)})`)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, '31020')
  })
})
