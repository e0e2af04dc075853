#!/usr/bin/env node
// The app-side preprocessing of model_runtime.js on its own: reads {"features": [spec features],
// "columns": {raw column: [values]}, "dtypes": {raw column: dtype}} (null = NaN) and prints
// {"<model input>": [values]} as transformFeature computes them, for comparison with the NumPy
// reference (ondevice/reference.py).
import {readFile} from 'node:fs/promises';

import * as tf from '@tensorflow/tfjs';

import {transformFeature} from '../src/model_runtime.js';

const {features, columns, dtypes} = JSON.parse(await readFile(process.argv[2], 'utf8'));
const values = Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, v.map((x) => (x === null ? NaN : x))]));
await tf.ready();
const out = {};
for (const f of features) Object.assign(out, transformFeature(tf, f, values, dtypes));
process.stdout.write(`${JSON.stringify(out)}\n`);
