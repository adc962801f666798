/**
 * A real browser for the tests: headless Chromium (Debian's `chromium-headless-shell`, or the one
 * ALBERTKIT_CHROMIUM names) driven by playwright-core, with WebGPU on SwiftShader, loading pages
 * from a static server on 127.0.0.1 that the test starts and that stops by itself. Every request
 * the page makes to any other address is refused and recorded, so nothing leaves the machine.
 *
 * onnxruntime-web's session log at verbose level says where each node runs ("Node placements");
 * `parsePlacements` reads it, so a test can tell a provider fallback from a clean run.
 */
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Browser, Page } from 'playwright-core'

/** Where a Chromium is looked for when ALBERTKIT_CHROMIUM is unset (Debian's paths). */
export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium']

/** WebGPU on SwiftShader (a CPU implementation of Vulkan), so the GPU provider runs without a GPU. */
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader']

/**
 * The Chromium to run: ALBERTKIT_CHROMIUM when set (it must exist; `none` means no browser), else
 * the first candidate that exists; null when there is none.
 */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  const named = env.ALBERTKIT_CHROMIUM
  if (named === 'none') return null
  if (named) {
    if (!fs.existsSync(named)) throw new Error(`ALBERTKIT_CHROMIUM names ${named}, which does not exist`)
    return named
  }
  return CHROMIUM_CANDIDATES.find((p) => fs.existsSync(p)) ?? null
}

/** A missing Chromium fails the browser suite in CI (CI set) or when ALBERTKIT_BROWSER=required. */
export function browserRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI
  return (ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false') || env.ALBERTKIT_BROWSER === 'required'
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
}

export interface StaticServer {
  origin: string
  /** paths that were asked for and not served (404), for a failing test to show */
  misses: string[]
  /** paths served, in order (a test can tell which model file a page fetched) */
  served: string[]
  close(): Promise<void>
}

export interface ServeOptions {
  /** the server closes itself this long after it starts (default 10 minutes) */
  lifetimeMs?: number
}

/**
 * Serve folders read-only on 127.0.0.1 (an ephemeral port): `mounts` maps a URL prefix ('/pkg/x/')
 * to a folder. GET and HEAD only; a path that leaves its folder (.., a link out of it) is a 404.
 * The server ends after `lifetimeMs` even if nobody closes it, and never keeps the process alive.
 */
export async function serveStatic(mounts: Record<string, string>, opts: ServeOptions = {}): Promise<StaticServer> {
  const roots = Object.entries(mounts)
    .map(([prefix, dir]) => {
      if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new Error(`mount prefix '${prefix}' must start and end with '/'`)
      return { prefix, root: fs.realpathSync(dir) }
    })
    .sort((a, b) => b.prefix.length - a.prefix.length)
  const misses: string[] = []
  const served: string[] = []
  const resolve = (urlPath: string): string | null => {
    let p: string
    try {
      p = decodeURIComponent(urlPath)
    } catch {
      return null
    }
    if (p.includes('\0')) return null
    const mount = roots.find((m) => p.startsWith(m.prefix))
    if (!mount) return null
    const file = path.resolve(mount.root, p.slice(mount.prefix.length))
    let real: string
    try {
      real = fs.realpathSync(file)
    } catch {
      return null
    }
    if (real !== mount.root && !real.startsWith(mount.root + path.sep)) return null
    return fs.statSync(real).isFile() ? real : null
  }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const file = req.method === 'GET' || req.method === 'HEAD' ? resolve(url.pathname) : null
    if (!file) {
      misses.push(`${req.method} ${url.pathname}`)
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    const size = fs.statSync(file).size
    served.push(url.pathname)
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': size,
      'cache-control': 'no-store',
    })
    if (req.method === 'HEAD') res.end()
    else fs.createReadStream(file).pipe(res)
  })
  server.maxConnections = 64
  server.requestTimeout = 60_000
  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => ok())
  })
  const { port } = server.address() as AddressInfo
  let closed: Promise<void> | undefined
  const close = () => {
    closed ??= new Promise<void>((ok) => {
      clearTimeout(timer)
      server.close(() => ok())
      server.closeAllConnections()
    })
    return closed
  }
  const timer = setTimeout(() => void close(), opts.lifetimeMs ?? 600_000)
  timer.unref()
  server.unref()
  return { origin: `http://127.0.0.1:${port}`, misses, served, close }
}

export interface BrowserPage {
  page: Page
  /** console lines at warning or error level and uncaught page errors, for a failing test to show */
  problems: string[]
  /** requests to anywhere but the test's server: refused, and a failure */
  outside: string[]
}

/** Launch Chromium with WebGPU on SwiftShader (playwright-core, loaded on first use). */
export async function launchChromium(executablePath: string): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return chromium.launch({ executablePath, args: WEBGPU_FLAGS, timeout: 60_000 })
}

/** Open `url` (on `origin`) in a new page; requests elsewhere are aborted and recorded. */
export async function openPage(browser: Browser, origin: string, url: string): Promise<BrowserPage> {
  const page = await browser.newPage()
  const problems: string[] = []
  const outside: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`[${m.type()}] ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`[pageerror] ${e.message}`))
  await page.route('**/*', (route) => {
    const u = route.request().url()
    if (u.startsWith(origin + '/') || u.startsWith('blob:') || u.startsWith('data:')) return route.continue()
    outside.push(u)
    return route.abort('blockedbyclient')
  })
  page.setDefaultTimeout(120_000)
  await page.goto(origin + url)
  return { page, problems, outside }
}

/** Node placement, as onnxruntime's session log tells it. */
export interface Placement {
  /** execution provider → number of nodes placed on it */
  counts: Map<string, number>
  /** execution provider → its nodes, where the log lists them (it does not when all nodes share one provider) */
  nodes: Map<string, { op: string; name: string }[]>
}

/**
 * Read onnxruntime's "Node placements" block (session log, verbose level) from log lines: either
 * "All nodes placed on [EP]. Number of nodes: N" (no node list), or per provider "Node(s) placed on
 * [EP]. Number of nodes: N" followed by one "  OpType (node name)" line per node. Returns the last
 * block, each list checked against its count; null when the lines hold no block.
 */
export function parsePlacements(lines: string[]): Placement | null {
  let result: Placement | null = null
  let current: { op: string; name: string }[] | null = null
  for (const raw of lines) {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, '')
    if (/\] Node placements\s*$/.test(line)) {
      result = { counts: new Map(), nodes: new Map() }
      current = null
      continue
    }
    if (!result) continue
    const all = /\] +All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line)
    if (all) {
      result.counts.set(all[1]!, Number(all[2]))
      current = null
      continue
    }
    const some = /\] +Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line)
    if (some) {
      current = []
      result.counts.set(some[1]!, Number(some[2]))
      result.nodes.set(some[1]!, current)
      continue
    }
    const node = /VerifyEachNodeIsAssignedToAnEp\] {3}(\S+) \((.*)\)\s*$/.exec(line)
    if (node && current) {
      current.push({ op: node[1]!, name: node[2]! })
      continue
    }
    current = null
  }
  if (result) {
    for (const [ep, list] of result.nodes) {
      const n = result.counts.get(ep)!
      if (list.length !== n) throw new Error(`the placement log says ${n} nodes on ${ep} but lists ${list.length}`)
    }
  }
  return result
}

/** Op types that onnxruntime's GetCapability logged as having no kernel in a provider. */
export function refusedOps(lines: string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const line of lines) {
    const m = /(\w+) kernel not found in registries for Op type: (\S+) node name: (.*)$/.exec(line)
    if (m) {
      const set = out.get(m[1]!) ?? new Set<string>()
      set.add(m[2]!)
      out.set(m[1]!, set)
    }
  }
  return out
}

/** Sorted op types with counts, 'Op×n', of a node list. */
export function opCounts(nodes: { op: string }[]): string[] {
  const counts = new Map<string, number>()
  for (const n of nodes) counts.set(n.op, (counts.get(n.op) ?? 0) + 1)
  return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([op, n]) => (n > 1 ? `${op}×${n}` : op))
}

/**
 * The folder of package `name` as Node's resolution finds it from inside the folder `from`: in
 * `from/node_modules`, then in the node_modules of each folder above. Real path, so a linked
 * install serves its own files.
 */
export function packageDir(name: string, from: string): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', name)
      if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate)
    }
    if (path.dirname(dir) === dir) throw new Error(`package ${name} not found from ${from}`)
  }
}
