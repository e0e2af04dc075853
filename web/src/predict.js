#!/usr/bin/env node
// Runs a converted web model (a folder with model/model.json and preprocessing_spec.json) on
// rows given as JSON and prints the predictions as JSON: the pipeline's TF.js validation and
// benchmark, in the same runtime code the web page uses (model_runtime.js).
//
//   node web/src/predict.js --model DIR --rows ROWS.json [--out OUT.json]
//        [--bench-single N] [--bench-batch SIZE --bench-repeats R]
//
// ROWS.json: {"columns": {"<raw column>": [values...]}}: strings ("" = missing), numbers with
// null for missing (NaN), timestamps as integer seconds (negative = missing).
// Output: {"predictions": [...], "backend", "tfjs_version", "load_ms", "bench": {...}}.
import {readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {pathToFileURL} from 'node:url';
import {parseArgs} from 'node:util';

import * as tf from '@tensorflow/tfjs';

import {MODEL_JSON, predict} from './model_runtime.js';
import {registerFileRouter} from './node_io.js';

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return {runs: s.length, mean_ms: s.reduce((a, b) => a + b, 0) / s.length, p50_ms: quantile(s, 0.5),
          p90_ms: quantile(s, 0.9), min_ms: s[0]};
}

function slice(columns, start, stop) {
  return Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, v.slice(start, stop)]));
}

function repeatTo(columns, n) {
  return Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, Array.from({length: n}, (_, i) => v[i % v.length])]));
}

async function main() {
  const {values: args} = parseArgs({options: {
    model: {type: 'string'}, rows: {type: 'string'}, out: {type: 'string'},
    'bench-single': {type: 'string'}, 'bench-batch': {type: 'string'}, 'bench-repeats': {type: 'string', default: '20'},
  }});
  if (!args.model || !args.rows) throw new Error('usage: predict.js --model DIR --rows ROWS.json [--out OUT.json]');
  const dir = path.resolve(args.model);
  const spec = JSON.parse(await readFile(path.join(dir, 'preprocessing_spec.json'), 'utf8'));
  const rows = JSON.parse(await readFile(args.rows, 'utf8'));
  // JSON has no NaN: null stands for a missing number.
  const columns = Object.fromEntries(Object.entries(rows.columns).map(([k, v]) => [k, v.map((x) => (x === null ? NaN : x))]));
  const n = Object.values(columns)[0]?.length ?? 0;

  registerFileRouter(tf);
  await tf.ready();
  const t0 = performance.now();
  const model = await tf.loadGraphModel(pathToFileURL(path.join(dir, MODEL_JSON)).href);
  const loadMs = performance.now() - t0;

  const predictions = Array.from(await predict(tf, model, spec, columns));
  const result = {predictions, n, backend: tf.getBackend(), tfjs_version: tf.version.tfjs,
                  node_version: process.versions.node, load_ms: loadMs, bench: {}};

  const single = Number(args['bench-single'] || 0);
  if (single > 0) {
    const ms = [];
    for (let i = 0; i < single; i += 1) {
      const row = slice(columns, i % n, (i % n) + 1);
      const start = performance.now();
      await predict(tf, model, spec, row);
      ms.push(performance.now() - start);
    }
    result.bench.per_example = stats(ms.slice(Math.min(5, ms.length - 1)));  // after warm-up
  }
  const batch = Number(args['bench-batch'] || 0);
  if (batch > 0) {
    const rowsBatch = repeatTo(columns, batch);
    const ms = [];
    const repeats = Number(args['bench-repeats']);
    for (let i = 0; i < repeats + 2; i += 1) {
      const start = performance.now();
      await predict(tf, model, spec, rowsBatch);
      ms.push(performance.now() - start);
    }
    result.bench[`batch_${batch}`] = {...stats(ms.slice(2)), batch};
  }
  const text = JSON.stringify(result);
  if (args.out) await writeFile(args.out, text);
  else process.stdout.write(`${text}\n`);
}

main().catch((err) => {
  process.stderr.write(`predict.js: ${err.stack || err}\n`);
  process.exit(1);
});
