// browser_test.mjs — storefront test in a real headless browser (Debian's
// chromium driven by playwright-core): open the page, upload a photo, wait
// for the result grid with band badges, the inferred category, then change
// a filter and see the grid refresh.  Fails on any console error or
// Content-Security-Policy violation.
//
// Usage:
//   node tests/server/browser_test.mjs [BASE_URL]
// Environment:
//   LK_BASE_URL        server to test (e.g. http://127.0.0.1:8080); when
//                      absent, LK_FAKE_SERVER (path to the test-only
//                      lk_fake_server binary) is started on an ephemeral port
//   LK_NODE_MODULES    directory holding node_modules/playwright-core
//                      (installed with `npm install --prefix DIR
//                      playwright-core`; never committed)
//   LK_TEST_PHOTO      JPEG/PNG to upload; default: a JPEG drawn in the page
//                      with a canvas (good enough for the fake backend; the
//                      integrated server wants a real demo photo)
//   LK_CHROMIUM        browser binary, default /usr/bin/chromium
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const nm = process.env.LK_NODE_MODULES;
const require = createRequire(nm ? path.join(path.resolve(nm), 'noop.js') : import.meta.url);
const { chromium } = require('playwright-core');

function fail(msg) {
  console.error('browser_test: FAIL: ' + msg);
  process.exitCode = 1;
}

async function startFakeServer(bin) {
  const child = spawn(bin, ['0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('fake server did not start')), 10000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => reject(new Error('fake server exited with ' + code)));
  });
  return { child, base: 'http://127.0.0.1:' + port };
}

async function main() {
  let base = process.argv[2] || process.env.LK_BASE_URL;
  let server = null;
  if (!base) {
    if (!process.env.LK_FAKE_SERVER) throw new Error('set LK_BASE_URL or LK_FAKE_SERVER');
    server = await startFakeServer(process.env.LK_FAKE_SERVER);
    base = server.base;
  }
  const browser = await chromium.launch({
    executablePath: process.env.LK_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  const problems = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('requestfailed', (r) => {
      // Thumbnails the backend cannot serve fall back to the SKU text; anything else is a problem.
      if (!r.url().includes('/v1/images/')) problems.push('request failed: ' + r.url());
    });

    const res = await page.goto(base + '/', { waitUntil: 'load' });
    if (!res || res.status() !== 200) throw new Error('GET / returned ' + (res && res.status()));

    let photo;
    if (process.env.LK_TEST_PHOTO) {
      const file = process.env.LK_TEST_PHOTO;
      photo = { name: path.basename(file), mimeType: /\.png$/i.test(file) ? 'image/png' : 'image/jpeg',
        buffer: readFileSync(file) };
    } else {
      const bytes = await page.evaluate(async () => {
        const c = document.createElement('canvas');
        c.width = 320; c.height = 240;
        const g = c.getContext('2d');
        const grad = g.createLinearGradient(0, 0, 320, 240);
        grad.addColorStop(0, '#c8b89a'); grad.addColorStop(1, '#6b5a43');
        g.fillStyle = grad; g.fillRect(0, 0, 320, 240);
        g.fillStyle = '#3d3428'; g.fillRect(40, 120, 240, 70);
        const blob = await new Promise((r) => c.toBlob(r, 'image/jpeg', 0.9));
        return Array.from(new Uint8Array(await blob.arrayBuffer()));
      });
      photo = { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: Buffer.from(bytes) };
    }

    const t0 = Date.now();
    await page.setInputFiles('#file', photo);
    await page.waitForSelector('#results li.card', { timeout: 20000 });
    const cards = await page.$$eval('#results li.card', (els) => els.map((e) => ({
      sku: e.dataset.sku,
      band: (e.querySelector('.band') || {}).textContent,
    })));
    console.log(`browser_test: ${cards.length} results in ${Date.now() - t0} ms; first: ${JSON.stringify(cards[0])}`);
    if (cards.length === 0) fail('no results');
    const bands = ['exact', 'high', 'medium', 'low'];
    for (const c of cards) if (!bands.includes(c.band)) fail('result without a band: ' + JSON.stringify(c));
    const inferred = await page.textContent('#inferred');
    if (!inferred || !inferred.trim()) fail('inferred category not shown');
    const status = await page.textContent('#status');
    if (!/result/.test(status)) fail('status line: ' + status);
    if ((await page.$$('#facet-list button')).length === 0) fail('no facets shown');

    // Filter: include out-of-stock items; the grid is rebuilt from a new search.
    const before = cards.length;
    const searched = page.waitForResponse((r) => r.url().includes('/v1/search') && r.status() === 200);
    await page.uncheck('#in-stock');
    await searched;
    await page.waitForFunction((n) => document.querySelectorAll('#results li.card').length >= n, before);
    console.log('browser_test: in-stock filter off -> ' +
      (await page.$$eval('#results li.card', (els) => els.length)) + ' results');

    // A category with nothing in it: the fallback message appears, never a blank screen.
    const searched2 = page.waitForResponse((r) => r.url().includes('/v1/search'));
    await page.fill('#category', 'garden/none');
    await page.click('#search');
    await searched2;
    await page.waitForSelector('#fallback:not([hidden])', { timeout: 10000 });
    console.log('browser_test: fallback shown: ' + (await page.textContent('#fallback')));
  } finally {
    await browser.close();
    if (server) server.child.kill('SIGTERM');
  }
  for (const p of problems) fail(p);
  if (!process.exitCode) console.log('browser_test: OK');
}

main().catch((e) => { fail(e.stack || String(e)); });
