// Loaded as a classic script before any module, so onnxruntime-web's wasm module binds these
// wrappers as its stdout/stderr. Its verbose session log is kept page-side: the lines that say
// where each node runs and which nodes a provider refused go to takeOrtLog(); the rest of the
// verbose and info chatter is dropped; anything else reaches the real console.
;(() => {
  const kept = []
  const keep = /VerifyEachNodeIsAssignedToAnEp|GetCapability|fallback_cpu_capability/
  const chatter = /\[[VI]:onnxruntime:/
  for (const level of ['log', 'info', 'warn', 'error']) {
    const real = console[level].bind(console)
    console[level] = (...args) => {
      const text = args.map(String).join(' ')
      if (keep.test(text)) kept.push(text)
      else if (!chatter.test(text)) real(...args)
    }
  }
  globalThis.takeOrtLog = () => kept.splice(0, kept.length)
})()
