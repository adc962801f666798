/** Every pass by name, for recipes and the `optimize --passes` flag. */
import type { Pass } from './pass.js'
import { UserError } from '../util/errors.js'
import { cse } from './cse.js'
import { dedup } from './dedup.js'
import { factorizationCheck } from './factorization-check.js'
import { foldConstants } from './fold-constants.js'
import { fp16 } from './fp16.js'
import { fuseAttention } from './fuse-attention.js'
import { fuseGelu } from './fuse-gelu.js'
import { fuseLayerNorm } from './fuse-layernorm.js'
import { fixShapes } from './fix-shapes.js'
import { quantizeInt8 } from './quantize-int8.js'
import { quantizeInt4 } from './quantize-int4.js'
import { quantizeQdq } from './quantize-qdq.js'
import { quantizeWeights } from './quantize-weights.js'
import { packTokensPass } from './pack-tokens.js'
import { removeUnused } from './remove-unused.js'
import { sortAndName } from './sort-and-name.js'
import { composeLayerNorm } from './compose-layernorm.js'
import { splitSkipLayerNorm } from './split-skip-layernorm.js'
import { stripMetadata } from './strip-metadata.js'
import { decomposeContrib } from './decompose-contrib.js'
import { upgradeOpset } from './upgrade-opset.js'
import { dropValueInfo } from './drop-value-info.js'

export const PASSES: ReadonlyMap<string, Pass> = new Map(
  [dedup, cse, foldConstants, removeUnused, sortAndName, quantizeInt8, quantizeInt4, fp16, factorizationCheck, fuseAttention, fuseLayerNorm, fuseGelu, fixShapes, quantizeQdq, quantizeWeights, stripMetadata, composeLayerNorm, splitSkipLayerNorm, decomposeContrib, upgradeOpset, dropValueInfo, packTokensPass].map((p) => [p.name, p]),
)

export function passByName(name: string): Pass {
  const p = PASSES.get(name)
  if (!p) throw new UserError(`unknown pass '${name}' (available: ${[...PASSES.keys()].join(', ')})`)
  return p
}
