/**
 * hidden_act → ONNX ops (opset 17, standard domain), one formula per name transformers' ACT2FN
 * accepts, written as transformers computes it.
 */
import { attrFloat } from '../ir/graph.js'
import type { Value } from '../ir/graph.js'
import type { GraphBuilder } from '../ir/builder.js'
import { fail } from '../util/errors.js'
import { printable } from '../util/printable.js'

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI)

type Emit = (b: GraphBuilder, x: Value, slope: () => Value) => Value

/** gelu with erf: x·0.5·(1 + erf(x/√2)) */
const geluErf: Emit = (b, x) => b.mul(b.mul(x, b.scalar(0.5)), b.add(b.scalar(1), b.op('Erf', [b.div(x, b.scalar(Math.SQRT2))])))

/** tanh gelu: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
const geluTanh: Emit = (b, x) => {
  const cube = b.op('Pow', [x, b.scalar(3)])
  const inner = b.mul(b.scalar(SQRT_2_OVER_PI), b.add(x, b.mul(b.scalar(0.044715), cube)))
  return b.mul(b.mul(b.scalar(0.5), x), b.add(b.scalar(1), b.op('Tanh', [inner])))
}

const silu: Emit = (b, x) => b.mul(x, b.op('Sigmoid', [x]))

const ACTIVATIONS: Record<string, Emit> = {
  gelu: geluErf,
  gelu_python: geluErf,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_python_tanh: geluTanh,
  gelu_accurate: geluTanh,
  // 0.5·x·(1 + tanh(x·0.7978845608·(1 + 0.044715·x²)))
  gelu_fast: (b, x) => {
    const poly = b.add(b.scalar(1), b.mul(b.mul(b.scalar(0.044715), x), x))
    const inner = b.mul(b.mul(x, b.scalar(0.7978845608)), poly)
    return b.mul(b.mul(b.scalar(0.5), x), b.add(b.scalar(1), b.op('Tanh', [inner])))
  },
  gelu_10: (b, x) => b.op('Clip', [geluErf(b, x, noSlope), b.scalar(-10), b.scalar(10)]),
  quick_gelu: (b, x) => b.mul(x, b.op('Sigmoid', [b.mul(b.scalar(1.702), x)])),
  relu: (b, x) => b.op('Relu', [x]),
  relu2: (b, x) => {
    const r = b.op('Relu', [x])
    return b.mul(r, r)
  },
  relu6: (b, x) => b.op('Clip', [x, b.scalar(0), b.scalar(6)]),
  leaky_relu: (b, x) => b.op('LeakyRelu', [x], [attrFloat('alpha', 0.01)]),
  silu,
  swish: silu,
  sigmoid: (b, x) => b.op('Sigmoid', [x]),
  tanh: (b, x) => b.op('Tanh', [x]),
  linear: (_b, x) => x,
  hardswish: (b, x) => b.op('HardSwish', [x]),
  mish: (b, x) => b.mul(x, b.op('Tanh', [b.op('Softplus', [x])])),
  sqrtsoftplus: (b, x) => b.op('Sqrt', [b.op('Softplus', [x])]),
  // 0.5·(1 + erf((x − μ)/(σ·√2))), μ = 0.707107, σ = 0.282095
  laplace: (b, x) => {
    const z = b.div(b.sub(x, b.scalar(0.707107)), b.scalar(0.282095 * Math.SQRT2))
    return b.mul(b.scalar(0.5), b.add(b.scalar(1), b.op('Erf', [z])))
  },
  prelu: (b, x, slope) => b.op('PRelu', [x, slope()]),
}

function noSlope(): Value {
  throw new Error('this activation has no learned slope')
}

/** Names transformers accepts that albertkit cannot build, with the reason. */
const UNSUPPORTED: Record<string, string> = {
  xielu: 'xielu keeps bfloat16 learned parameters and has no exact ONNX form here',
}

export const SUPPORTED_ACTIVATIONS = Object.keys(ACTIVATIONS)

export function checkActivation(name: string, where: string): void {
  if (ACTIVATIONS[name]) return
  const why = UNSUPPORTED[name]
  if (why) fail(where, `hidden_act '${printable(name)}' is not supported: ${why}`)
  fail(where, `hidden_act '${printable(name)}' is not an activation transformers knows (supported: ${SUPPORTED_ACTIVATIONS.join(', ')})`)
}

/** Emit activation `name` on x. `slope` supplies the learned weight for prelu. */
export function buildActivation(b: GraphBuilder, name: string, x: Value, slope: () => Value): Value {
  const emit = ACTIVATIONS[name]
  if (!emit) throw new Error(`unknown activation ${name}`)
  return emit(b, x, slope)
}
