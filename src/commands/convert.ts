import { Args, Flags } from '@oclif/core'
import { AlbertkitCommand } from '../cli/base.js'
import { convert } from '../pipeline/convert.js'
import { TASKS } from '../builder/albert.js'
import { passFlags, passOptionsFrom } from '../cli/pass-flags.js'
import { PRECISIONS, parsePrecisions } from '../recipes/precision.js'
import { TARGETS, targetPlans } from '../recipes/targets.js'
import { inputSpecFrom, thresholdsFrom, verifyFlags } from '../cli/verify-flags.js'
import { parseFixedShape } from '../passes/fix-shapes.js'
import { readCalibration } from '../passes/calibrate.js'
import { UserError } from '../util/errors.js'

export default class Convert extends AlbertkitCommand {
  static override summary = 'Build ONNX models from an ALBERT checkpoint.'
  static override description =
    'Reads a Hugging Face ALBERT checkpoint (config.json with model.safetensors or sharded safetensors) and writes <out>/onnx/model.onnx, built straight from the weights (opset 17, standard ops, each shared ALBERT tensor stored once), the config and tokenizer files, and <out>/report.json. The head comes from config.architectures unless --task names one. Nothing is left at <out> when anything fails.'
  static override examples = [
    '<%= config.bin %> convert fixtures/albert-mlm --out build/albert-mlm',
    '<%= config.bin %> convert ./my-albert --out ./onnx-albert --task text-classification',
  ]
  static override args = {
    checkpoint: Args.string({ description: 'checkpoint folder (or a file inside it)', required: true }),
  }
  static override flags = {
    out: Flags.string({ char: 'o', description: 'output folder', required: true }),
    task: Flags.string({ description: `head to build (default: from config.architectures): ${TASKS.join(', ')}` }),
    force: Flags.boolean({ char: 'f', description: 'replace the output folder if it exists', default: false }),
    target: Flags.string({ description: `optimize for a deployment target: ${TARGETS.join(', ')} (fixes the models emitted; see the README)` }),
    precision: Flags.string({ description: `comma-separated precisions to emit: ${PRECISIONS.join(', ')} (files model.onnx, model_int8.onnx, model_q4.onnx, model_fp16.onnx)`, default: 'fp32' }),
    'fixed-shape': Flags.string({ description: 'pin batch and sequence sizes to B,S (e.g. 1,128): shape arithmetic folded, attention as 2-D MatMuls at batch 1; models then take exactly [B, S]' }),
    calibration: Flags.string({ description: 'static int8 (--target mobile): safetensors file of sample inputs (input_ids, attention_mask, token_type_ids) to calibrate activation scales on (default: seeded random inputs)' }),
    verify: Flags.boolean({ description: 'check every emitted model against the fp32 reference (exit code 1 when one fails)', default: true, allowNo: true }),
    ...verifyFlags,
    ...passFlags,
  }
  static override enableJsonFlag = true

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Convert)
    if (flags['fixed-shape'] && flags.target !== 'mobile') throw new UserError('--fixed-shape needs --target mobile')
    const report = await convert({
      checkpoint: args.checkpoint,
      out: flags.out,
      task: flags.task,
      force: flags.force,
      precisions: parsePrecisions(flags.precision),
      ...(flags.target ? { plans: targetPlans(flags.target) } : {}),
      ...passOptionsFrom(flags),
      ...(flags['fixed-shape'] ? { fixedShape: parseFixedShape(flags['fixed-shape']) } : {}),
      ...(flags.calibration ? { calibration: readCalibration(flags.calibration) } : {}),
      noVerify: !flags.verify,
      inputs: inputSpecFrom(flags),
      thresholds: thresholdsFrom(flags),
      log: (line) => process.stderr.write(`${line}\n`),
      warn: (m) => process.stderr.write(`warning: ${m}\n`),
    })
    for (const a of report.artifacts) {
      const verdict = a.verdict ? (a.verdict.pass ? ', parity PASS' : ', parity FAIL') : ''
      this.log(`${flags.out}/${a.path}: ${a.precision}, ${formatBytes(a.bytes)}, ${a.nodes} nodes${verdict}`)
    }
    if (report.verification && !report.verification.pass) {
      process.exitCode = 1
      process.stderr.write('Error: parity check failed for at least one model (see above and report.json)\n')
    }
    return report
  }
}

export function formatBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`
  return `${n} B`
}
