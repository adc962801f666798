/**
 * The browser suite's harness without a browser: the one line `npm test` prints when there is no
 * Chromium and the failure CI gets instead, the static server's refusals, and the reading of
 * onnxruntime's node-placement log.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { ROOT, tempDir } from './support/helpers.js'
import { browserRequired, opCounts, parsePlacements, refusedOps, serveStatic } from './support/browser.js'

const SUITE = path.join(ROOT, 'dist', 'test', 'browser', 'web.test.js')

function suite(env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['CI', 'ALBERTKIT_BROWSER', 'NODE_TEST_CONTEXT'].includes(k)))
  return spawnSync(process.execPath, ['--test', '--test-reporter=tap', SUITE], { encoding: 'utf8', env: { ...clean, ...env } })
}

describe('the browser suite without a Chromium', () => {
  it('prints one line and passes outside CI', () => {
    const r = suite({ ALBERTKIT_CHROMIUM: 'none' })
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const said = r.stdout.split('\n').filter((l) => l.includes('browser suite skipped'))
    assert.deepEqual(said, ['# browser suite skipped: no Chromium found (install chromium-headless-shell or set ALBERTKIT_CHROMIUM)'])
    assert.match(r.stdout, /^# fail 0$/m)
  })

  it('fails with CI=true, and when npm run test:browser asks for it', () => {
    const envs: Record<string, string>[] = [{ CI: 'true' }, { ALBERTKIT_BROWSER: 'required' }]
    for (const env of envs) {
      const r = suite({ ALBERTKIT_CHROMIUM: 'none', ...env })
      assert.equal(r.status, 1, JSON.stringify(env))
      assert.match(r.stdout, /no Chromium found: install Debian's chromium-headless-shell or set ALBERTKIT_CHROMIUM/)
    }
    assert.equal(browserRequired({ CI: 'false' }), false)
    assert.equal(browserRequired({ CI: '0' }), false)
    assert.equal(browserRequired({ CI: '1' }), true)
  })
})

describe('the static server', () => {
  it('serves its folders on 127.0.0.1 only, and nothing outside them', async () => {
    const dir = tempDir()
    fs.mkdirSync(path.join(dir, 'pub'))
    fs.writeFileSync(path.join(dir, 'pub', 'a.json'), '{"a":1}')
    fs.writeFileSync(path.join(dir, 'secret.txt'), 'no')
    fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(dir, 'pub', 'link.txt'))
    const server = await serveStatic({ '/m/': path.join(dir, 'pub') })
    try {
      assert.match(server.origin, /^http:\/\/127\.0\.0\.1:\d+$/)
      const get = async (p: string, method = 'GET') => (await fetch(server.origin + p, { method })).status
      assert.equal(await get('/m/a.json'), 200)
      assert.deepEqual(await (await fetch(server.origin + '/m/a.json')).json(), { a: 1 })
      assert.equal(await get('/m/../secret.txt'), 404)
      assert.equal(await get('/m/%2e%2e/secret.txt'), 404)
      assert.equal(await get('/m/link.txt'), 404, 'a link out of the folder')
      assert.equal(await get('/m/a.json', 'POST'), 404)
      assert.equal(await get('/elsewhere/a.json'), 404)
      assert.deepEqual(server.served, ['/m/a.json', '/m/a.json'])
      assert.equal(server.misses.length, 5)
    } finally {
      await server.close()
    }
  })
})

describe("onnxruntime's placement log", () => {
  const v = (text: string) => `2026-12-01 00:00:00.000 [V:onnxruntime:, session_state_utils.cc:1 VerifyEachNodeIsAssignedToAnEp] ${text}`
  it('reads which provider took which nodes, and the ops a provider refused', () => {
    const log = [
      '[V:onnxruntime:, x.cc:1 VerifyEachNodeIsAssignedToAnEp] Node placements',
      v(' Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 2'),
      v('  MatMul (/l/MatMul)'),
      v('  Softmax (/l/Softmax)'),
      v(' Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1'),
      v('  Shape (/shapes/Shape)'),
      '[V:onnxruntime:, webgpu.cc:1 GetCapability] webgpu kernel not found in registries for Op type: Shape node name: /shapes/Shape',
    ]
    const p = parsePlacements(log)!
    assert.deepEqual(Object.fromEntries(p.counts), { WebGpuExecutionProvider: 2, CPUExecutionProvider: 1 })
    assert.deepEqual(opCounts(p.nodes.get('WebGpuExecutionProvider')!), ['MatMul', 'Softmax'])
    assert.deepEqual([...refusedOps(log).get('webgpu')!], ['Shape'])
    assert.equal(parsePlacements(['nothing here']), null)
    assert.throws(() => parsePlacements([...log.slice(0, 3), ...log.slice(4)]), /says 2 nodes on WebGpuExecutionProvider but lists 1/)
  })
})
