// One transformers.js pipeline run, written once for both sides: the browser page passes the web
// build, the Node test the Node build, so both do exactly the same calls.
//   spec: { task, folder, dtype, args }: one call on a batch, args [texts] or [questions, contexts]
// (one batch, one padded shape: SwiftShader compiles WebGPU shaders per shape, a second each).

/** The pipeline's result on the batch, as plain data. */
export async function runPipeline(tf, spec, options = {}) {
  const opts = { dtype: spec.dtype, ...options }
  let run
  let dispose
  if (spec.task === 'token-classification') {
    // transformers.js has no AlbertForTokenClassification: AutoModel returns the logits.
    const model = await tf.AutoModel.from_pretrained(spec.folder, opts)
    const tokenizer = await tf.AutoTokenizer.from_pretrained(spec.folder)
    const tagger = new tf.TokenClassificationPipeline({ task: spec.task, model, tokenizer })
    run = (args) => tagger(...args)
    dispose = () => tagger.dispose()
  } else {
    const pipe = await tf.pipeline(spec.task, spec.folder, opts)
    run = (args) => pipe(...args)
    dispose = () => pipe.dispose()
  }
  try {
    return await run(spec.args)
  } finally {
    await dispose()
  }
}
