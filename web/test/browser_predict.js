#!/usr/bin/env node
// Opens a pushed web demo in headless Chromium (playwright-core driving the system's browser; no
// browser download), fills its form with each given row as a person would (typing into the
// fields), clicks Predict and reads the probability the page shows.
//
//   node web/test/browser_predict.js --url http://127.0.0.1:PORT/ --rows ROWS.json --out OUT.json
//        [--chromium /usr/bin/chromium] [--screenshot PAGE.png]
//
// ROWS.json: {"columns": {name: [values]}, "dtypes": {name: dtype}}: null, "" and (integer columns)
// negative values are missing, typed as an empty field. OUT.json: {"predictions": [...],
// "backend", "subtitle", "console": [...]}.
import {readFile} from 'node:fs/promises';
import {parseArgs} from 'node:util';

import {COMMON_OPTIONS, answer, run, withDemoPage} from './demo_page.js';

async function main() {
  const {values: args} = parseArgs({options: {...COMMON_OPTIONS, rows: {type: 'string'}}});
  const {columns, dtypes = {}} = JSON.parse(await readFile(args.rows, 'utf8'));
  const names = Object.keys(columns);
  const n = columns[names[0]].length;
  await withDemoPage(args, async (page, context) => {
    const predictions = [];
    const errors = [];
    for (let i = 0; i < n; i += 1) {
      for (const name of names) {
        const v = columns[name][i];
        const missing = v === null || v === '' || (/^int/.test(dtypes[name] || '') && v < 0);
        await page.fill(`#col-${name}`, missing ? '' : String(v));
      }
      await page.click('#predict');
      const values = await answer(page, i + 1);  // one value, or K probabilities
      if (!values) errors.push(`row ${i}: ${await page.textContent('#decision')}`);
      predictions.push(values);
    }
    return {predictions, errors, browser: context.browser()?.version() ?? null};
  });
}

run('browser_predict.js', main);
