#!/usr/bin/env node
// Opens a pushed image-model demo in headless Chromium (playwright-core driving the system's
// browser), uploads each given image file through the page's file input as a person would, and
// reads the class probabilities the page shows.
//
//   node web/test/browser_image_predict.js --url http://127.0.0.1:PORT/index.html --files FILES.json
//        --out OUT.json [--chromium /usr/bin/chromium] [--screenshot PAGE.png]
//
// Then it draws a vertical stroke on the page's drawing pad with the mouse and reads that answer.
// FILES.json: ["/abs/path/a.png", ...]. OUT.json: {"predictions": [[K probabilities] or null],
// "errors", "backend", "subtitle", "drawn": [K probabilities of the drawing], "console"}.
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {parseArgs} from 'node:util';

import {chromium} from 'playwright-core';

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

async function main() {
  const {values: args} = parseArgs({options: {
    url: {type: 'string'}, files: {type: 'string'}, out: {type: 'string'},
    chromium: {type: 'string', default: '/usr/bin/chromium'}, screenshot: {type: 'string'},
    timeout: {type: 'string', default: '60000'},
  }});
  const timeout = Number(args.timeout);
  const files = JSON.parse(await readFile(args.files, 'utf8'));
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'chromium-profile-'));
  const logs = [];
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium, headless: true, args: FLAGS, timeout,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(timeout);
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(args.url);
    await page.waitForFunction(() => document.body.dataset.ready);
    if (await page.evaluate(() => document.body.dataset.ready) !== '1') {
      throw new Error(`the page did not load its model: ${await page.textContent('#subtitle')}\n${logs.join('\n')}`);
    }
    const predictions = [];
    const errors = [];
    for (let i = 0; i < files.length; i += 1) {
      await page.setInputFiles('#image-file', files[i]);
      await page.waitForFunction((k) => document.getElementById('probability').dataset.count === String(k), i + 1);
      const value = await page.getAttribute('#probability', 'data-value');
      if (!value) errors.push(`${files[i]}: ${await page.textContent('#decision')}`);
      predictions.push(value ? value.split(',').map(Number) : null);
    }
    // Then a person drawing: a vertical stroke (a "1") on the pad, classified on pointer up.
    await page.click('#clear');
    const box = await page.locator('#pad').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.2);
    await page.mouse.down();
    for (let k = 1; k <= 10; k += 1) await page.mouse.move(box.x + box.width / 2, box.y + box.height * (0.2 + 0.06 * k));
    await page.mouse.up();
    await page.waitForFunction((k) => document.getElementById('probability').dataset.count === String(k), files.length + 1);
    const drawnValue = await page.getAttribute('#probability', 'data-value');
    const drawn = drawnValue ? drawnValue.split(',').map(Number) : null;
    const drawnAnswer = await page.textContent('#probability');
    if (args.screenshot) await page.screenshot({path: args.screenshot, fullPage: true});
    const result = {predictions, errors, backend: await page.evaluate(() => window.tf.getBackend()),
      subtitle: await page.textContent('#subtitle'), decision: await page.textContent('#decision'), drawn,
      drawn_answer: drawnAnswer, console: logs};
    const text = JSON.stringify(result);
    if (args.out) await writeFile(args.out, text);
    else process.stdout.write(`${text}\n`);
  } finally {
    await context.close();
    await rm(userDataDir, {recursive: true, force: true});
  }
}

main().catch((err) => {
  process.stderr.write(`browser_image_predict.js: ${err.stack || err}\n`);
  process.exit(1);
});
