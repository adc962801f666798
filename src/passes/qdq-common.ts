/**
 * What quantize-qdq and quantize-weights share (not a pass): every quantizable weight becomes
 * int8 with symmetric per-channel scales, stored once however many layer calls read it, in its
 * own layout (no transposed copy). Linear readers (MatMul, Gemm) read it through a standard
 * DequantizeLinear (axis = the output-channel axis); lookups (the embedding Gathers and the
 * position Slice) gather int8 rows and dequantize them with Cast and Mul (quant-common's
 * rewriteLookup). Standard ONNX ops only, opset 13 or later (per-axis DequantizeLinear). Both run
 * the same guarded flow (guardedQuantization): calibrate, rewrite, keep in float what the
 * accuracy guard asks for.
 */
import { DataType } from '../ir/dtype.js'
import { attrInt, type Graph, type Model, type Node, type Value } from '../ir/graph.js'
import { Tensor } from '../ir/tensor.js'
import { UserError } from '../util/errors.js'
import { GUARD_THRESHOLDS, guardedRewrite, type Guarded, type JudgedSet } from './accuracy-guard.js'
import { calibrate, calibrationFeeds, holdoutFeeds, type Range } from './calibrate.js'
import { modelRunner, type PassContext, type PassOptions, type PassResult } from './pass.js'
import { planWeights, int8Weight, rewriteLookup, storeInt8, type Int8Weight, type Use, type WeightPlan } from './quant-common.js'
import { cleanup } from '../ir/cleanup.js'

export interface DequantizedWeights {
  /** MatMul/Gemm nodes now reading an int8 weight through DequantizeLinear */
  readers: Node[]
  weights: number
  lookups: number
  /** weights some reader could not take quantized: left float */
  leftFloat: number
  int8Bytes: number
}

/** Plans for every weight whose readers are all plain linear layers or lookups. */
export function planQdqWeights(model: Model, opts: Readonly<PassOptions>): { plans: WeightPlan[]; skipped: number } {
  const opset = model.opsetVersion('') ?? 0
  if (opset < 13) throw new UserError(`per-channel DequantizeLinear needs opset 13 or later; the model imports opset ${opset}`)
  return planWeights(model.graph, opts, (uses) => uses.every((u) => u.kind !== 'attention'))
}

/** The activation input of each linear use, keyed by value (one entry per value, with its readers). */
export function linearInputs(plans: WeightPlan[]): Map<Value, Node[]> {
  const out = new Map<Value, Node[]>()
  for (const p of plans) {
    for (const u of p.uses) {
      if (u.kind !== 'linear') continue
      const a = u.node.inputs[0]!
      const list = out.get(a) ?? []
      if (!list.includes(u.node)) list.push(u.node)
      out.set(a, list)
    }
  }
  return out
}

/**
 * Quantize the planned weights and rewrite their readers. `dqPerReader`: one DequantizeLinear per
 * reading node (a QDQ node unit each, as onnxruntime's QDQ fusions want), else one per weight.
 */
export function applyQdqWeights(model: Model, plans: WeightPlan[], dqPerReader: boolean, skipped = 0, cache = new Map<string, Int8Weight>()): DequantizedWeights {
  const g = model.graph
  const result: DequantizedWeights = { readers: [], weights: plans.length, lookups: 0, leftFloat: skipped, int8Bytes: 0 }
  for (const plan of plans) {
    const qw = cached(cache, plan)
    const stored = storeInt8(g, { ...plan, storeTransposed: false }, qw)
    const zero = g.addInitializer(g.uniqueName(`${plan.weight.name}.zero_point`), new Tensor(DataType.INT8, [...qw.scale.dims], new Uint8Array(qw.scale.size)))
    result.int8Bytes += qw.q.byteLength
    let shared: Value | undefined
    const dequantized = () => dequantize(g, [stored.q, stored.scale, zero], plan)
    for (const use of plan.uses) {
      if (use.kind === 'lookup') {
        rewriteLookup(g, use, stored, plan.perTensor)
        result.lookups++
      } else if (use.kind === 'linear') {
        readLinear(use, dqPerReader ? dequantized() : (shared ??= dequantized()))
        result.readers.push(use.node)
      }
    }
  }
  if (plans.length) {
    g.toposort()
    cleanup(g)
  }
  return result
}

/** The int8 form of a planned weight, computed once per weight name (the guard rewrites many copies). */
function cached(cache: Map<string, Int8Weight>, plan: WeightPlan): Int8Weight {
  let qw = cache.get(plan.weight.name)
  if (!qw) {
    qw = int8Weight(plan.weight.const!, plan.channelAxis, plan.perTensor, false)
    cache.set(plan.weight.name, qw)
  }
  return qw
}

function dequantize(g: Graph, inputs: Value[], plan: WeightPlan): Value {
  const name = `${plan.weight.name}.dequantized`
  const attrs = plan.perTensor ? [] : [attrInt('axis', plan.channelAxis)]
  return g.addNode('DequantizeLinear', inputs, [name], { name: g.uniqueNodeName(name), attrs }).outputs[0]!
}

/** Point the reader (or the Transpose it reads the weight through) at the dequantized weight. */
function readLinear(use: Extract<Use, { kind: 'linear' }>, w: Value): void {
  if (use.via) use.via.setInput(0, w)
  else use.node.setInput(1, w)
}

/** A guarded rewrite: quantize all but the units `kept` in float, with the calibrated ranges; returns the pass's figures. */
export type GuardedRewrite = (model: Model, kept: ReadonlySet<string>, ranges: Map<string, Range>, cache: Map<string, Int8Weight>) => Record<string, number>

/**
 * The flow quantize-qdq and quantize-weights share: plan the weights; run the float model on the
 * calibration feeds (the user's, or seeded random ones) through the context's model runner,
 * recording the ranges of the values `activations` names; rewrite the model, keeping in float the
 * fewest of the costliest units (weights, then those activations) that keep it within the accuracy
 * guard; and report the guard's account (a warning names what stayed float).
 */
export async function guardedQuantization(
  pass: string,
  model: Model,
  context: PassContext,
  activations: (plans: WeightPlan[]) => string[],
  rewrite: GuardedRewrite,
): Promise<PassResult> {
  const { plans } = planQdqWeights(model, context.options)
  if (plans.length === 0) return { model, changed: false, stats: { weightsQuantized: 0 } }
  const runner = modelRunner(pass, context)
  const names = activations(plans)
  const feeds = calibrationFeeds(model.graph, context.options.calibration)
  const { ranges, reference } = await calibrate(model, names, feeds, runner)
  const sets: JudgedSet[] = [{ feeds, reference }]
  const holdout = holdoutFeeds(model.graph)
  if (holdout.length) sets.push({ feeds: holdout, reference: await runner.run(model, holdout, { exact: true }) })
  const cache = new Map<string, Int8Weight>()
  const units = [...plans.map((p) => p.weight.name), ...names]
  const { stats, guard } = await guardedRewrite(model, units, (m, kept) => rewrite(m, kept, ranges, cache), sets, runner)
  return { model, ...guardResult(stats, guard, feeds.length, context) }
}

/** The pass result with the guard's account; a warning names what stayed float, or that the guard still fails. */
function guardResult(stats: Record<string, number>, guard: Guarded, feeds: number, context: PassContext): Omit<PassResult, 'model'> {
  const warnings: string[] = []
  const bounds = `cosine ${GUARD_THRESHOLDS.cosine} and top-1 agreement ${100 * GUARD_THRESHOLDS.top1}%`
  if (guard.kept.length) warnings.push(`kept in float to stay within ${bounds} on the calibration and held-out inputs: ${guard.kept.join(', ')}`)
  if (guard.shortfall > 1) warnings.push(`still short of ${bounds} on the calibration and held-out inputs (shortfall ${guard.shortfall.toFixed(2)})`)
  for (const w of warnings) context.warn(w)
  return {
    changed: true,
    stats: { ...stats, calibrationFeeds: feeds, keptFloat: guard.kept.length, guardShortfall: Number(guard.shortfall.toFixed(4)), guardRuns: guard.evaluations },
    warnings,
  }
}
