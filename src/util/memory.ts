/** Giving memory back before a native library (onnxruntime) takes its share. */
import v8 from 'node:v8'
import vm from 'node:vm'

let gc: (() => void) | undefined

/**
 * Run a full garbage collection now. Large array buffers nothing references any more (a
 * checkpoint's weights) are freed only by a collection, and native allocations do not prompt one.
 */
export function releaseMemory(): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc')
    gc = vm.runInNewContext('gc') as () => void
  }
  gc()
}
