// What the Chromium drivers of the pushed demo pages share (browser_predict.js: a tabular or text
// form; browser_image_predict.js: upload and drawing): playwright-core driving the system's
// browser in a throw-away profile (no browser download), the page opened and its model loaded,
// an answer read after the k-th prediction, and the result written as JSON.
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {chromium} from 'playwright-core';

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

// The options every driver takes (parseArgs form): --url, --out, --chromium, --screenshot, --timeout.
export const COMMON_OPTIONS = {
  url: {type: 'string'}, out: {type: 'string'},
  chromium: {type: 'string', default: '/usr/bin/chromium'}, screenshot: {type: 'string'},
  timeout: {type: 'string', default: '60000'},
};

// Opens args.url once its model has loaded, runs `drive(page, context)` and writes its result with
// the page's backend, subtitle and console lines to args.out (stdout without it).
export async function withDemoPage(args, drive) {
  const timeout = Number(args.timeout);
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
    const driven = await drive(page, context);
    if (args.screenshot) await page.screenshot({path: args.screenshot, fullPage: true});
    const result = {...driven, backend: await page.evaluate(() => window.tf.getBackend()),
      subtitle: await page.textContent('#subtitle'), console: logs};
    const text = JSON.stringify(result);
    if (args.out) await writeFile(args.out, text);
    else process.stdout.write(`${text}\n`);
  } finally {
    await context.close();
    await rm(userDataDir, {recursive: true, force: true});
  }
}

// The page's answer to its k-th prediction (1-based): every output value (one, or K class
// probabilities), or null when the page showed an error instead.
export async function answer(page, k) {
  await page.waitForFunction((n) => document.getElementById('probability').dataset.count === String(n), k);
  const value = await page.getAttribute('#probability', 'data-value');
  return value ? value.split(',').map(Number) : null;
}

// Runs main, reporting a failure on stderr with the script's name and exit status 1.
export function run(name, main) {
  main().catch((err) => {
    process.stderr.write(`${name}: ${err.stack || err}\n`);
    process.exit(1);
  });
}
