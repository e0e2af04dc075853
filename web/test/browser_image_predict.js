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
import {readFile} from 'node:fs/promises';
import {parseArgs} from 'node:util';

import {COMMON_OPTIONS, answer, run, withDemoPage} from './demo_page.js';

async function main() {
  const {values: args} = parseArgs({options: {...COMMON_OPTIONS, files: {type: 'string'}}});
  const files = JSON.parse(await readFile(args.files, 'utf8'));
  await withDemoPage(args, async (page) => {
    const predictions = [];
    const errors = [];
    for (let i = 0; i < files.length; i += 1) {
      await page.setInputFiles('#image-file', files[i]);
      const values = await answer(page, i + 1);
      if (!values) errors.push(`${files[i]}: ${await page.textContent('#decision')}`);
      predictions.push(values);
    }
    // Then a person drawing: a vertical stroke (a "1") on the pad, classified on pointer up.
    await page.click('#clear');
    const box = await page.locator('#pad').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.2);
    await page.mouse.down();
    for (let k = 1; k <= 10; k += 1) await page.mouse.move(box.x + box.width / 2, box.y + box.height * (0.2 + 0.06 * k));
    await page.mouse.up();
    const drawn = await answer(page, files.length + 1);
    return {predictions, errors, decision: await page.textContent('#decision'), drawn,
      drawn_answer: await page.textContent('#probability')};
  });
}

run('browser_image_predict.js', main);
