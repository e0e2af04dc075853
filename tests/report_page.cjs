#!/usr/bin/env node
// Opens the run report (index.html) from file:// in headless Chromium (playwright-core from
// web/node_modules driving the system's browser) and writes what a reader sees as JSON: console
// lines and page errors, every request the page made other than its own file and data: URIs, each
// section's text, every [data-check] value, the lineage drawing's node count; a full-page screenshot.
//
//   node tests/report_page.cjs --page INDEX.html --out OUT.json --screenshot PAGE.png
//        [--web WEB_DIR] [--chromium /usr/bin/chromium]
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {parseArgs} = require('node:util');

const {values: args} = parseArgs({options: {
  page: {type: 'string'}, out: {type: 'string'}, screenshot: {type: 'string'},
  web: {type: 'string', default: path.join(__dirname, '..', 'web')},
  chromium: {type: 'string', default: '/usr/bin/chromium'},
}});
const {chromium} = require(path.join(args.web, 'node_modules', 'playwright-core'));

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-report-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium, headless: true, timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const url = `file://${path.resolve(args.page)}`;
  const consoleLines = [];
  const requests = [];
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    page.on('request', (r) => { if (r.url() !== url && !r.url().startsWith('data:')) requests.push(r.url()); });
    page.on('requestfailed', (r) => consoleLines.push(`requestfailed: ${r.url()}`));
    await page.goto(url, {waitUntil: 'load'});
    const seen = await page.evaluate(() => ({
      title: document.title,
      sections: Object.fromEntries([...document.querySelectorAll('section')].map((s) => [s.id, s.innerText])),
      checks: Object.fromEntries([...document.querySelectorAll('[data-check]')]
        .map((e) => [e.dataset.check, e.textContent.trim()])),
      lineage: {executions: document.querySelectorAll('svg.lineage g.execution').length,
        artifacts: document.querySelectorAll('svg.lineage g.artifact').length,
        labels: [...document.querySelectorAll('svg.lineage g.execution text')].map((t) => t.textContent)},
      images: [...document.images].map((i) => ({ok: i.complete && i.naturalWidth > 0, alt: i.alt})),
    }));
    if (args.screenshot) await page.screenshot({path: args.screenshot, fullPage: true});
    fs.writeFileSync(args.out, JSON.stringify({...seen, console: consoleLines, requests}));
  } finally {
    await context.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
}

main().catch((err) => { process.stderr.write(`report_page.cjs: ${err.stack || err}\n`); process.exit(1); });
