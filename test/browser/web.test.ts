/**
 * albertkit's output folders in a real browser: headless Chromium loads pages from a server on
 * 127.0.0.1 that run every folder × model file × provider (wasm, and WebGPU on SwiftShader)
 * through onnxruntime-web directly, and every pipeline through transformers.js, and hands the
 * results back. They must match onnxruntime-node on the same inputs (1e-4 max abs for fp32, the
 * precision's tolerance otherwise) and transformers.js under Node (same labels, answers, tokens).
 * A WebGPU run that leaves nodes to the CPU provider beyond what cases.ts records fails: node
 * placement is read from onnxruntime-web's own session log. Files that need an adapter feature
 * (float16: shader-f16) are skipped, with the reason, when the adapter lacks it.
 *
 * Without a Chromium the suite prints one line and runs nothing, unless CI is set or
 * ALBERTKIT_BROWSER=required (as `npm run test:browser` sets): then that is a failure.
 * ALBERTKIT_BROWSER_REPORT=<file> writes every figure (parity, placement, timings) as JSON.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Browser } from 'playwright-core'
import { compareOutputs, type Parity } from '../../src/verify/compare.js'
import { defaultThresholds, precisionOfFile } from '../../src/targets/precision.js'
import { readModelFile } from '../../src/onnx/file.js'
import { targetByName } from '../../src/targets/targets.js'
import { ROOT, fixtureInputs, runOnFixture, tempDir } from '../support/helpers.js'
import {
  browserRequired,
  findChromium,
  launchChromium,
  openPage,
  opCounts,
  packageDir,
  parsePlacements,
  refusedOps,
  serveStatic,
  type BrowserPage,
  type StaticServer,
} from '../support/browser.js'
import { FOLDERS, PROVIDERS, buildFolder, type PipelineCase, type Provider, type WebFile, type WebFolder } from './cases.js'

interface PageOutputs {
  outputs: Record<string, { dims: number[]; data: number[] }>
  log: string[]
  createMs: number
  runMs: number
}

interface Adapter {
  adapter: boolean
  reason?: string
  features: string[]
  vendor?: string
  architecture?: string
}

type Harness = { run(spec: unknown): Promise<unknown>; adapter(): Promise<Adapter>; versions: Record<string, string> }
type RunPipeline = (tf: unknown, spec: unknown, options?: unknown) => Promise<unknown>

const PAGE_DIR = path.join(ROOT, 'test', 'browser', 'page')
const WEBGPU_EP = 'WebGpuExecutionProvider'
const CPU_EP = 'CPUExecutionProvider'

/** What config.json's transformers.js_config makes transformers.js load per device (targets.ts). */
const DEVICE_CONFIG = targetByName('web').transformersJs?.device_config as Record<Provider, { dtype: string }>
const DEFAULT_DTYPE: Record<Provider, string> = { wasm: DEVICE_CONFIG.wasm.dtype, webgpu: DEVICE_CONFIG.webgpu.dtype }

const chromium = findChromium()
const report: Record<string, unknown>[] = []

if (!chromium) {
  if (browserRequired()) {
    describe('browser suite', () => {
      it('finds a Chromium', () => {
        assert.fail('no Chromium found: install Debian\'s chromium-headless-shell or set ALBERTKIT_CHROMIUM (required because CI or ALBERTKIT_BROWSER=required is set)')
      })
    })
  } else {
    console.log('browser suite skipped: no Chromium found (install chromium-headless-shell or set ALBERTKIT_CHROMIUM)')
  }
} else {
  browserSuite(chromium)
}

/** The mounts the pages need: themselves, the models, and the browser builds they import. */
function mounts(models: string): Record<string, string> {
  const tjs = packageDir('@huggingface/transformers', ROOT)
  return {
    '/page/': PAGE_DIR,
    '/models/': models,
    '/pkg/onnxruntime-web/': packageDir('onnxruntime-web', ROOT),
    '/pkg/transformers/': tjs,
    '/pkg/transformers-ort/': packageDir('onnxruntime-web', tjs),
    '/pkg/transformers-ort-common/': packageDir('onnxruntime-common', tjs),
  }
}

function feedsOf(fixture: string): Record<string, { type: string; dims: number[]; data: number[] }> {
  const out: Record<string, { type: string; dims: number[]; data: number[] }> = {}
  for (const [name, t] of fixtureInputs(fixture)) {
    const ids = new BigInt64Array(t.data.buffer, t.data.byteOffset, t.size)
    out[name] = { type: 'int64', dims: [...t.dims], data: Array.from(ids, Number) }
  }
  return out
}

/** Op types of a model file (for a provider that took every node, as the log then lists none). */
function fileOps(file: string): string[] {
  return opCounts(readModelFile(file).graph.nodes.map((n) => ({ op: n.opType })))
}

interface PlacementFigures {
  /** provider → nodes placed on it */
  counts: Record<string, number>
  /** op types left to the CPU provider (WebGPU runs) */
  onCpu: string[]
  /** op types on WebGPU, where the log lists them */
  onGpu: string[] | null
  /** op types WebGPU's GetCapability found no kernel for */
  refused: string[]
}

function placementFigures(log: string[]): PlacementFigures {
  const p = parsePlacements(log)
  assert.ok(p, `the session log has no "Node placements" block (${log.length} lines kept)`)
  return {
    counts: Object.fromEntries(p.counts),
    onCpu: p.counts.has(CPU_EP) && p.counts.size > 1 ? opCounts(p.nodes.get(CPU_EP) ?? []) : [],
    onGpu: p.nodes.has(WEBGPU_EP) ? opCounts(p.nodes.get(WEBGPU_EP)!) : null,
    refused: [...(refusedOps(log).get('webgpu') ?? [])].sort(),
  }
}

/** wasm runs every node on the CPU provider; WebGPU takes nodes and leaves exactly `expected` to the CPU. */
function assertPlacement(fig: PlacementFigures, provider: Provider, expected: string[] | undefined, label: string): void {
  const providers = Object.keys(fig.counts).sort()
  if (provider === 'wasm') {
    assert.deepEqual(providers, [CPU_EP], `${label}: wasm placed nodes on ${providers.join(', ')}`)
    return
  }
  assert.ok((fig.counts[WEBGPU_EP] ?? 0) > 0, `${label}: no node placed on WebGPU (${providers.join(', ')})`)
  assert.deepEqual(providers.filter((ep) => ep !== WEBGPU_EP && ep !== CPU_EP), [], `${label}: nodes on another provider`)
  assert.deepEqual(fig.onCpu, expected ?? [], `${label}: nodes WebGPU left to the CPU provider (a fallback)`)
}

/** CPU seconds (user + system) used so far by the processes below this one (the browser's), from /proc. */
function descendantCpuSeconds(): number {
  const parent = new Map<number, number>()
  const ticks = new Map<number, number>()
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      parent.set(Number(entry), Number(fields[1]))
      ticks.set(Number(entry), Number(fields[11]) + Number(fields[12]))
    } catch {
      // the process ended while being read
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === process.pid) return true
    return false
  }
  let total = 0
  for (const [pid, t] of ticks) if (below(pid)) total += t
  return total / 100
}

/** Labels, tokens, answers, indices equal; scores within `tol`. Returns the largest score difference. */
function sameResults(node: unknown, web: unknown, tol: number, where: string): number {
  if (typeof node === 'number' && typeof web === 'number') {
    if (Number.isInteger(node) && Number.isInteger(web) && !where.endsWith('.score')) {
      assert.equal(web, node, where)
      return 0
    }
    const d = Math.abs(node - web)
    assert.ok(d <= tol, `${where}: ${web} in the browser, ${node} under Node (tolerance ${tol})`)
    return d
  }
  if (Array.isArray(node)) {
    assert.ok(Array.isArray(web), `${where}: not an array in the browser`)
    assert.equal(web.length, node.length, `${where}: length`)
    return node.reduce((m: number, x, i) => Math.max(m, sameResults(x, (web as unknown[])[i], tol, `${where}[${i}]`)), 0)
  }
  if (node && typeof node === 'object') {
    assert.ok(web && typeof web === 'object', `${where}: not an object in the browser`)
    assert.deepEqual(Object.keys(web).sort(), Object.keys(node).sort(), `${where}: keys`)
    let m = 0
    for (const k of Object.keys(node)) m = Math.max(m, sameResults((node as Record<string, unknown>)[k], (web as Record<string, unknown>)[k], tol, `${where}.${k}`))
    return m
  }
  assert.equal(web, node, where)
  return 0
}

/** Pipeline score tolerance: fp32 as the outputs; quantized files' probabilities within 1e-3. */
const scoreTolerance = (file: WebFile) => (precisionOfFile(file.file) === 'fp32' ? 1e-4 : 1e-3)

function browserSuite(executable: string): void {
  describe('albertkit folders in headless Chromium (onnxruntime-web and transformers.js)', () => {
    const models = tempDir('albertkit-browser-')
    let server: StaticServer
    let browser: Browser
    let ortPage: BrowserPage
    let tjsPage: BrowserPage
    let demoPage: BrowserPage | undefined
    let adapter: Adapter
    let nodeTf: unknown
    let runPipeline: RunPipeline
    const nodePipelines = new Map<string, Promise<unknown>>()
    const started = performance.now()

    before(async () => {
      for (const f of FOLDERS) await buildFolder(models, f)
      server = await serveStatic(mounts(models), { lifetimeMs: 20 * 60_000 })
      browser = await launchChromium(executable)
      ortPage = await openPage(browser, server.origin, '/page/ort.html')
      tjsPage = await openPage(browser, server.origin, '/page/tjs.html')
      for (const p of [ortPage, tjsPage]) await p.page.waitForFunction(() => 'harness' in globalThis, null, { timeout: 60_000 })
      adapter = (await ortPage.page.evaluate(() => (globalThis as unknown as { harness: Harness }).harness.adapter())) as Adapter
      runPipeline = ((await import(pathToFileURL(path.join(PAGE_DIR, 'pipelines.js')).href)) as { runPipeline: RunPipeline }).runPipeline
      const tf = (await import('@huggingface/transformers')) as unknown as { env: Record<string, unknown> }
      tf.env.allowRemoteModels = false
      tf.env.allowLocalModels = true
      tf.env.localModelPath = models + path.sep
      nodeTf = tf
    })

    after(async () => {
      const browserCpu = process.env.ALBERTKIT_BROWSER_REPORT ? descendantCpuSeconds() : undefined
      await browser?.close()
      await server?.close()
      const file = process.env.ALBERTKIT_BROWSER_REPORT
      if (file) fs.writeFileSync(file, JSON.stringify({ seconds: (performance.now() - started) / 1000, browserCpu, adapter, report }, null, 1))
    })

    it('the page has a WebGPU adapter (SwiftShader here) and says which features it has', () => {
      assert.ok(adapter.adapter, `no WebGPU adapter: ${adapter.reason}`)
      assert.ok(Array.isArray(adapter.features) && adapter.features.length > 0)
      report.push({ adapter })
    })

    for (const folder of FOLDERS) {
      for (const file of folder.files) {
        for (const provider of file.providers) {
          it(`${folder.name} ${file.file} on ${provider}: onnxruntime-web equals onnxruntime-node`, async (t) => {
            if (lacksFeature(file, provider)) {
              report.push({ folder: folder.name, file: file.file, provider, skipped: `adapter has no ${file.needs}` })
              t.skip(`skipped by the adapter: the WebGPU adapter has no ${file.needs}`)
              return
            }
            await runDirect(folder, file, provider)
          })
        }
      }
    }

    async function runDirect(folder: WebFolder, file: WebFile, provider: Provider) {
      const local = path.join(models, folder.name, file.file)
      const label = `${folder.name}/${file.file} on ${provider}`
      const got = (await ortPage.page.evaluate(
        (spec) => (globalThis as unknown as { harness: Harness }).harness.run(spec),
        { model: `/models/${folder.name}/${file.file}`, provider, feeds: feedsOf(folder.fixture) },
      )) as PageOutputs
      const placement = placementFigures(got.log)
      const reference = await runOnFixture(local, folder.fixture)
      const precision = precisionOfFile(file.file)
      const outputs: ({ name: string; dims: number[] } & Parity)[] = []
      for (const [name, ref] of reference) {
        const web = got.outputs[name]
        assert.ok(web, `${label}: no output '${name}' (has ${Object.keys(got.outputs).join(', ')})`)
        const last = ref.dims[ref.dims.length - 1]!
        const same = web.data.length === ref.data.length
        outputs.push({ name, dims: web.dims, ...(same ? compareOutputs(ref.data, Float32Array.from(web.data), name.includes('logits') ? last : undefined) : { maxAbs: NaN, meanAbs: NaN, cosine: NaN, nonFinite: 0 }) })
      }
      const fileOpTypes = provider === 'webgpu' && !placement.onGpu ? { fileOps: fileOps(local) } : {}
      report.push({ folder: folder.name, file: file.file, provider, precision, outputs, placement, ...fileOpTypes, createMs: got.createMs, runMs: got.runMs })
      assertPlacement(placement, provider, file.webgpuOnCpu, label)
      const bounds = defaultThresholds(precision)
      for (const o of outputs) {
        assert.deepEqual(o.dims, reference.get(o.name)!.dims, `${label}: ${o.name} dims`)
        if (bounds.maxAbs !== undefined) assert.ok(o.maxAbs <= bounds.maxAbs, `${label}: ${o.name} max abs ${o.maxAbs} > ${bounds.maxAbs}`)
        if (bounds.cosine !== undefined) assert.ok(o.cosine >= bounds.cosine, `${label}: ${o.name} cosine ${o.cosine} < ${bounds.cosine}`)
        if (bounds.top1 !== undefined && o.top1 !== undefined) assert.ok(o.top1 >= bounds.top1, `${label}: ${o.name} top-1 ${o.top1} < ${bounds.top1}`)
      }
    }

    for (const folder of FOLDERS) {
      const pipe = folder.pipeline
      if (!pipe) continue
      for (const file of folder.files) {
        for (const provider of file.providers) {
          it(`${folder.name} ${pipe.task}, dtype ${file.dtype}, device ${provider}: transformers.js in the browser answers as under Node`, async (t) => {
            if (lacksFeature(file, provider)) {
              t.skip(`skipped by the adapter: the WebGPU adapter has no ${file.needs}`)
              return
            }
            await runTransformers(folder, pipe, file, provider)
          })
        }
      }
      for (const provider of PROVIDERS) {
        const dtype = DEFAULT_DTYPE[provider]
        it(`${folder.name} ${pipe.task}, no dtype, device ${provider}: config.json makes transformers.js load ${dtype}`, async () => {
          const file = folder.files.find((f) => f.dtype === dtype)!
          const from = server.served.length
          await runTransformers(folder, pipe, file, provider, { defaultDtype: true })
          const models = server.served.slice(from).filter((p) => p.startsWith(`/models/${folder.name}/onnx/`))
          assert.deepEqual(models, [`/models/${folder.name}/${file.file}`])
        })
      }
    }

    /** A WebGPU run of a file that needs an adapter feature this adapter lacks. */
    function lacksFeature(file: WebFile, provider: Provider): boolean {
      return provider === 'webgpu' && !!file.needs && !adapter.features.includes(file.needs)
    }

    async function runTransformers(folder: WebFolder, pipe: PipelineCase, file: WebFile, provider: Provider, opts: { defaultDtype?: boolean } = {}) {
      const label = `${folder.name} ${pipe.task} ${opts.defaultDtype ? 'default dtype' : file.dtype} on ${provider}`
      const spec = { task: pipe.task, folder: folder.name, dtype: file.dtype, args: pipe.args }
      const keeper = `/models/${FOLDERS[0]!.name}/${FOLDERS[0]!.files[0]!.file}`
      const key = `${folder.name} ${file.dtype}`
      if (!nodePipelines.has(key)) nodePipelines.set(key, runPipeline(nodeTf, spec))
      const expected = await nodePipelines.get(key)!
      const got = (await tjsPage.page.evaluate(
        (s) => (globalThis as unknown as { harness: Harness }).harness.run(s),
        { ...spec, ...(opts.defaultDtype ? { dtype: undefined } : {}), device: provider, keeper },
      )) as { results: unknown; log: string[] }
      const placement = placementFigures(got.log)
      const entry: Record<string, unknown> = { folder: folder.name, task: pipe.task, dtype: file.dtype, provider, placement, node: expected, results: got.results }
      report.push(entry)
      assertPlacement(placement, provider, file.webgpuOnCpu, label)
      entry.maxScoreDiff = sameResults(expected, got.results, scoreTolerance(file), label)
    }

    it('a short demo: fill-mask on typed text shows Node\'s top tokens and scores (ALBERTKIT_SCREENSHOT=<file> keeps its picture)', async () => {
      const folder = FOLDERS.find((f) => f.pipeline?.task === 'fill-mask')!
      const demo = await openPage(browser, server.origin, `/page/demo.html?folder=${folder.name}&device=wasm`)
      demoPage = demo
      await demo.page.setViewportSize({ width: 600, height: 300 })
      await demo.page.waitForFunction(() => 'demoReady' in globalThis, null, { timeout: 60_000 })
      const text = 'trains leave the central [MASK] every hour.'
      await demo.page.fill('#text', text)
      await demo.page.click('#go')
      await demo.page.waitForFunction(() => 'demoResults' in globalThis, null, { timeout: 60_000 })
      const shown = await demo.page.$$eval('#out tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)))
      const spec = { task: 'fill-mask', folder: folder.name, dtype: DEFAULT_DTYPE.wasm, args: [text] }
      const expected = ((await runPipeline(nodeTf, spec)) as { token_str: string; score: number }[])
      assert.deepEqual(
        shown,
        expected.map((r) => [r.token_str, r.score.toFixed(4)]),
      )
      const png = await demo.page.screenshot({ fullPage: true })
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG')
      report.push({ demo: { text, shown, pngBytes: png.byteLength } })
      const keep = process.env.ALBERTKIT_SCREENSHOT
      if (keep) fs.writeFileSync(keep, png)
    })

    it('nothing was asked of any address but the test server', () => {
      assert.deepEqual([...ortPage.outside, ...tjsPage.outside, ...(demoPage?.outside ?? [])], [])
    })
  })
}
