// A short demo for the README's screenshot: type a sentence with [MASK], the page fills it with
// transformers.js from the web folder under /models/<folder>/ (?folder=...&device=...), and shows
// the top tokens with their scores, the dtype transformers.js picked and the time the call took.
import { tf } from './tjs-env.js'

const params = new URLSearchParams(location.search)
const folder = params.get('folder') ?? 'mlm-web'
const device = params.get('device') ?? 'wasm'
const fill = await tf.pipeline('fill-mask', folder, { device })
const body = document.querySelector('#out tbody')

async function run(event) {
  event?.preventDefault()
  const text = document.getElementById('text').value
  const t0 = performance.now()
  const results = await fill(text, { top_k: 5 })
  const ms = performance.now() - t0
  body.replaceChildren(
    ...results.map((r) => {
      const row = document.createElement('tr')
      const bar = document.createElement('div')
      bar.className = 'bar'
      bar.style.width = `${Math.max(1, Math.round(r.score * 300))}px`
      for (const [cls, content] of [['', r.token_str], ['score', r.score.toFixed(4)], ['', bar]]) {
        const td = document.createElement('td')
        if (cls) td.className = cls
        td.append(content)
        row.append(td)
      }
      return row
    }),
  )
  document.getElementById('meta').textContent = `${folder} on ${device}, dtype ${fill.model.config['transformers.js_config']?.device_config?.[device]?.dtype ?? 'default'}, ${ms.toFixed(0)} ms, transformers.js ${tf.env.version}`
  globalThis.demoResults = results
}

document.getElementById('form').addEventListener('submit', run)
globalThis.demoReady = true
