// The pipeline's TF.js models at run time, in the browser and in Node alike: raw column values
// in, probabilities out. `tf` is passed in (the browser's global bundle or Node's import), so
// this module has no dependency of its own.
//
// The graph model computes every feature its preprocessing spec marks `builtin` from the raw
// columns itself. The others (hashes, hashed OOV buckets, crosses: no TF.js op for them in a
// graph the converter accepts) enter the model already transformed; `transformFeature` computes
// them here exactly as the spec says (the NumPy reference in ondevice/reference.py,
// FarmHash fingerprints by tf.string.stringToHashBucketFast, the function tf.Transform uses).
//
// Column values: strings ("" = missing), numbers (NaN = missing), timestamps as integer seconds
// (negative = missing; dtype int64 in the spec, int32 in TF.js, which has no int64).

import {tokenize, tokenizeStep} from './text.js';

export const MODEL_JSON = 'model/model.json';
export const isInteger = (dtype) => dtype === 'int32' || dtype === 'int64';

function columnOf(columns, name) {
  const values = columns[name];
  if (values === undefined) throw new Error(`missing raw column '${name}'`);
  return values;
}

// A raw column's values as the model sees them: numbers as float32 (Math.fround), so that
// features computed here from "1.1" use the same float32 value the graph model gets.
function valuesOf(columns, name, dtype) {
  const values = columnOf(columns, name);
  return dtype === 'float32' ? values.map(Math.fround) : values;
}

function present(values, dtype) {
  if (dtype === 'string') return values.map((v) => v !== '');
  if (isInteger(dtype)) return values.map((v) => v >= 0);
  return values.map((v) => !Number.isNaN(v));
}

// feature_steps._as_tokens: integers print without a fraction, other numbers as %f.
function token(v) {
  if (typeof v === 'string') return v;
  return v === Math.round(v) ? String(Math.trunc(v)) : v.toFixed(6);
}

function hashBuckets(tf, tokens, buckets) {
  return tf.tidy(() => Array.from(tf.string.stringToHashBucketFast(tf.tensor1d(tokens, 'string'), buckets).dataSync()));
}

function searchsortedRight(boundaries, v) {
  let count = 0;
  for (const b of boundaries) if (b <= v) count += 1;
  return count;
}

function boxCoxLike(v, lam) {
  return Math.abs(lam) < 1e-12 ? Math.log1p(v) : Math.expm1(lam * Math.log1p(v)) / lam;
}

function power(x, lam, kind) {
  if (kind === 'box_cox') return boxCoxLike(x - 1, lam);
  return x >= 0 ? boxCoxLike(x, lam) : -boxCoxLike(-x, 2 - lam);
}

// One feature's model inputs ({name: array of numbers or of vectors}) from raw columns.
export function transformFeature(tf, feature, columns, dtypes) {
  const source = feature.source;
  const name = feature.name;
  let x;
  let ok;
  if (source.cyclical) throw new Error(`feature ${name}: cyclical features are computed inside the model`);
  if (source.ratio) {
    const [num, den] = source.ratio.map((c) => valuesOf(columns, c, dtypes[c]));
    const [numOk, denOk] = source.ratio.map((c) => present(columnOf(columns, c), dtypes[c]));
    ok = num.map((_, i) => numOk[i] && denOk[i] && den[i] !== 0);
    x = num.map((v, i) => (ok[i] ? v / den[i] : 0));
  } else if (source.cross) {
    const parts = source.cross.map((c) => {
      const values = valuesOf(columns, c, dtypes[c]);
      const p = present(values, dtypes[c]);
      return values.map((v, i) => token(p[i] ? v : (typeof v === 'string' ? '' : 0)));
    });
    const oks = source.cross.map((c) => present(columnOf(columns, c), dtypes[c]));
    x = parts[0].map((_, i) => parts.map((p) => p[i]).join(source.separator));
    ok = x.map((_, i) => oks.every((p) => p[i]));
  } else {
    x = valuesOf(columns, source.column, dtypes[source.column]);
    ok = present(x, dtypes[source.column]);
  }
  const extra = {};
  for (const step of feature.steps) {
    switch (step.op) {
      case 'impute':
        x = x.map((v, i) => (ok[i] ? v : step.fill));
        if (step.indicator) extra[`${name}_missing_xf`] = ok.map((p) => (p ? 0 : 1));
        break;
      case 'bucketize':  // after an impute, of the imputed value; on a raw column, missing -> missing_bucket
        x = step.missing_bucket === null ? x.map((v) => searchsortedRight(step.boundaries, v))
          : x.map((v, i) => (ok[i] ? searchsortedRight(step.boundaries, v) : step.missing_bucket));
        break;
      case 'clip': x = x.map((v) => Math.min(Math.max(v, step.lower), step.upper)); break;
      case 'log': x = x.map(Math.log); break;
      case 'log1p': x = x.map(Math.log1p); break;
      case 'box_cox': case 'yeo_johnson': x = x.map((v) => power(v, step.lambda, step.op)); break;
      case 'z_score': x = x.map((v) => (step.std > 0 ? (v - step.mean) / step.std : v - step.mean)); break;
      case 'min_max': {
        const [lo, hi] = step.range;
        const span = step.max - step.min;
        x = x.map((v) => (span > 0 ? (v - step.min) / span : 0) * (hi - lo) + lo);
        break;
      }
      case 'robust': x = x.map((v) => (v - step.median) / (step.iqr > 0 ? step.iqr : 1)); break;
      case 'max_abs': x = x.map((v) => v / (step.max_abs > 0 ? step.max_abs : 1)); break;
      case 'categorical_identity':
        x = x.map((v) => Math.min(Math.max(Math.trunc(v), 0), step.num_buckets - 1));
        break;
      case 'hash': x = hashBuckets(tf, x.map(token), step.buckets); break;
      case 'vocabulary': {
        const keys = step.keys;
        const numericKeys = step.numeric && !keys.every((k) => typeof k === 'string');
        const lookup = new Map(keys.map((k, i) => [numericKeys ? Number(k) : k, i]));
        const tokens = x.map(token);
        const idx = x.map((v, i) => lookup.get(numericKeys ? Number(v) : tokens[i]) ?? -1);
        const unseen = step.oov_buckets > 1 ? hashBuckets(tf, tokens, step.oov_buckets) : idx.map(() => 0);
        x = idx.map((v, i) => (v >= 0 ? v : keys.length + unseen[i]));
        if (step.encoding === 'one_hot') x = x.map((v) => Array.from({length: step.size}, (_, k) => (k === v ? 1 : 0)));
        break;
      }
      default: throw new Error(`feature ${name}: unknown step ${step.op}`);
    }
  }
  return {[`${name}_xf`]: x, ...extra};
}

// {raw column: dtype} of every column an app supplies: the model's raw inputs and the source
// columns of the features it takes already transformed.
export function rawColumns(spec) {
  const dtypes = {};
  for (const input of spec.inputs) {
    if (input.tokens_of) dtypes[input.tokens_of] = 'string';  // text: the app tokenizes (text.js)
    else if (!input.transformed) dtypes[input.name] = input.dtype;
  }
  for (const f of spec.features) {
    if (f.builtin) continue;
    const s = f.source;
    const names = s.ratio || s.cross || (s.cyclical ? [s.cyclical.column] : [s.column]);
    const dtype = s.cyclical ? 'int64' : (f.type === 'string' && !s.ratio ? 'string' : 'float32');
    for (const c of names) if (!(c in dtypes)) dtypes[c] = dtype;
  }
  return dtypes;
}

// The model's feeds ({input name: tensor}) for n rows of raw columns.
export function modelInputs(tf, spec, columns) {
  const dtypes = rawColumns(spec);
  const transformed = {};
  for (const f of spec.features) if (!f.builtin) Object.assign(transformed, transformFeature(tf, f, columns, dtypes));
  const feeds = {};
  for (const input of spec.inputs) {
    const values = input.tokens_of  // text: tokens [max_tokens] per row, by the reference tokenizer
      ? columnOf(columns, input.tokens_of).map((t) => tokenize(t, tokenizeStep(spec, input)))
      : (input.transformed ? transformed[input.name] : columnOf(columns, input.name));
    if (values === undefined) throw new Error(`no values for model input '${input.name}'`);
    const n = values.length;
    const shape = [n, ...(input.shape || [])];
    if (input.dtype === 'string') feeds[input.name] = tf.tensor(values.flat(), shape, 'string');
    else if (isInteger(input.dtype)) feeds[input.name] = tf.tensor(Int32Array.from(values.flat()), shape, 'int32');
    else feeds[input.name] = tf.tensor(Float32Array.from(values.flat()), shape, 'float32');
  }
  return feeds;
}

// The model's output (Float32Array, row after row: one value per row, or K class probabilities)
// on raw columns.
export async function predict(tf, model, spec, columns) {
  const feeds = modelInputs(tf, spec, columns);
  try {
    let out = await model.executeAsync(feeds);
    if (Array.isArray(out)) throw new Error(`the model has ${out.length} outputs; expected '${spec.output}' only`);
    if (!(out instanceof tf.Tensor)) out = out[spec.output];
    const values = await out.data();
    out.dispose();
    return Float32Array.from(values);
  } finally {
    Object.values(feeds).forEach((t) => t.dispose());
  }
}
