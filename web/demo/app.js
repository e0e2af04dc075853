// The demo page: a form of the model's raw columns (from metadata.json), predictions in the
// browser with the same runtime code the pipeline validates in Node (model_runtime.js).
import {MODEL_JSON, isInteger, predict} from './model_runtime.js';
import {isTextColumn} from './text.js';
import {answerer, loadModel, showModel} from './ui.js';

const tf = window.tf;
const $ = (id) => document.getElementById(id);

function vocabularies(spec) {
  // Column -> known string values (from the string vocabularies), offered as suggestions.
  const out = {};
  for (const f of spec.features) {
    if (!f.source.column) continue;
    for (const step of f.steps) {
      if (step.op === 'vocabulary' && step.keys.every((k) => typeof k === 'string')) out[f.source.column] = step.keys;
    }
  }
  return out;
}

function hint(column) {
  if (column.dtype === 'string') return 'text';
  if (isInteger(column.dtype)) return 'Unix seconds (UTC) or an ISO date';
  return 'number';
}

function buildForm(columns, spec) {
  const form = $('features');
  const anchor = $('example-row');
  const vocab = vocabularies(spec);
  for (const column of columns) {
    const label = document.createElement('label');
    label.htmlFor = `col-${column.name}`;
    label.textContent = column.name;
    const small = document.createElement('small');
    small.textContent = hint(column);
    label.append(small);
    // A text feature's column: a textarea where a person types the text (tokenized by text.js).
    const text = isTextColumn(spec, column.name);
    const input = document.createElement(text ? 'textarea' : 'input');
    if (text) input.rows = 8;
    input.id = `col-${column.name}`;
    input.name = column.name;
    input.dataset.dtype = column.dtype;
    if (!text) input.type = 'text';
    if (column.dtype !== 'string') input.inputMode = 'decimal';
    if (vocab[column.name]) {
      const list = document.createElement('datalist');
      list.id = `vocab-${column.name}`;
      for (const k of vocab[column.name].slice(0, 200)) list.append(new Option(k));
      input.setAttribute('list', list.id);
      form.append(list);
    }
    form.insertBefore(label, anchor);
    form.insertBefore(input, anchor);
  }
}

// One form field as the runtime's column value; throws (naming the field) on a malformed one.
function parseField(input) {
  const text = input.value;
  const dtype = input.dataset.dtype;
  if (dtype === 'string') return text;
  const t = text.trim();
  if (t === '') return isInteger(dtype) ? -1 : NaN;
  if (isInteger(dtype)) {
    const seconds = /^-?\d+$/.test(t) ? Number(t) : Date.parse(t) / 1000;
    if (!Number.isFinite(seconds)) throw new Error(`${input.name}: not Unix seconds or a date: ${t}`);
    return Math.trunc(seconds);
  }
  const v = Number(t);
  if (Number.isNaN(v)) throw new Error(`${input.name}: not a number: ${t}`);
  return v;
}

function fillExample(example) {
  for (const [name, value] of Object.entries(example.values)) {
    const input = $(`col-${name}`);
    if (!input) continue;
    const missing = value === null || value === '' || (isInteger(input.dataset.dtype) && value < 0);
    input.value = missing ? '' : String(value);
  }
}

async function main() {
  const [metadata, spec] = await Promise.all(
    ['metadata.json', 'preprocessing_spec.json'].map((f) => fetch(f).then((r) => {
      if (!r.ok) throw new Error(`${f}: HTTP ${r.status}`);
      return r.json();
    })));
  if (spec.inputs.some((i) => i.pixels)) {  // an image model: draw or upload (image.js, pushed with it)
    const {runImagePage} = await import('./image.js');
    return runImagePage(tf, spec, metadata);
  }
  const target = spec.label.replace(/_label$/, '');  // the default label name is <column>_label
  const question = {multiclass_classification: `Which ${target}?`, regression: `What ${target}?`};
  $('title').textContent = `${question[spec.task] || `Will it be ${spec.label}?`} (${metadata.model} model, TF.js)`;
  buildForm(metadata.raw_columns, spec);
  // The SavedModel's answer for each example row: P(positive), the top class, or the value.
  const answer = (v) => (Array.isArray(v)
    ? `${spec.classes[v.indexOf(Math.max(...v))]} ${(100 * Math.max(...v)).toFixed(1)}%` : v.toFixed(4));
  metadata.examples.forEach((ex, i) => $('example').append(
    new Option(`row ${i + 1} (SavedModel: ${answer(ex.saved_model)})`, String(i))));
  $('example').addEventListener('change', (e) => { if (e.target.value !== '') fillExample(metadata.examples[Number(e.target.value)]); });

  const model = await loadModel(tf, MODEL_JSON);
  showModel(tf, metadata, 'rows',
    {multiclass_classification: 'same class', regression: 'within 1%'}[spec.task] || 'same decision');
  $('predict').disabled = false;
  document.body.dataset.ready = '1';

  const show = answerer();
  $('features').addEventListener('submit', (event) => {
    event.preventDefault();
    const inputs = [...$('features').querySelectorAll('[data-dtype]')];
    return show(async () => {
      const columns = {};
      inputs.forEach((i) => i.classList.remove('invalid'));
      for (const input of inputs) {
        try {
          columns[input.name] = [parseField(input)];
        } catch (err) {
          input.classList.add('invalid');
          throw err;
        }
      }
      const values = Array.from(await predict(tf, model, spec, columns));  // K class probabilities, or one value
      if (spec.task === 'multiclass_classification') {
        const best = values.indexOf(Math.max(...values));
        return {values, value: `${spec.classes[best]} (${(100 * values[best]).toFixed(1)}%)`,
          decision: spec.classes.map((c, i) => `${c} ${(100 * values[i]).toFixed(1)}%`).join(' · ')};
      }
      if (spec.task === 'regression') return {values, value: values[0].toPrecision(6), decision: `predicted ${spec.label}`};
      return {values, value: values[0].toFixed(4), decision: `${spec.label}: ${values[0] > 0.5 ? 'yes' : 'no'}`};
    });
  });
}

main().catch((err) => {
  $('subtitle').textContent = `Could not load the model: ${err.message || err}`;
  $('subtitle').className = 'sub error';
  document.body.dataset.ready = 'error';
});
