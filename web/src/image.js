// Image models on the demo page: draw a digit or upload a picture, see the class probabilities.
//
// The graph model's image input is decoded pixels (preprocessing_spec.json, input with
// "pixels": true): float32 [batch, height, width, channels], values 0..255, greyscale by
// ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B) or RGB. The browser decodes the file; the
// picture is drawn onto a height x width canvas (the browser's smoothing when it has another
// size: the spec's resize is TF's bilinear, so only a picture of the model's size is fed exactly
// as the pipeline validated). Scaling and standardization run inside the model.
import {predict} from './model_runtime.js';
import {answerer, loadModel, showModel} from './ui.js';

// The spec's image input ({name, shape: [h, w, c]}) or null for a tabular model.
export function imageInputOf(spec) {
  return spec.inputs.find((i) => i.pixels) || null;
}

// float32 pixels 0..255 of a canvas area, as the model takes them (row-major, channels last).
export function pixelsOf(source, height, width, channels) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, width, height);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const out = new Array(height * width * channels);
  for (let p = 0; p < height * width; p += 1) {
    const [r, g, b] = [rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]];
    if (channels === 1) out[p] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else { out[3 * p] = r; out[3 * p + 1] = g; out[3 * p + 2] = b; }
  }
  return out;
}

function element(tag, props = {}, children = []) {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

// The page for an image model: replaces the tabular form with a drawing pad and a file input.
export async function runImagePage(tf, spec, metadata) {
  const $ = (id) => document.getElementById(id);
  const show = answerer();
  const input = imageInputOf(spec);
  const [height, width, channels] = input.shape;
  $('title').textContent = `Which ${spec.label}? (${metadata.model} model, TF.js)`;
  $('features').style.display = 'none';  // the tabular form
  const pad = element('canvas', {id: 'pad', width: 280, height: 280,
    title: 'draw a digit: white on black, as the training images'});
  pad.style.cssText = 'background:#000;border-radius:6px;touch-action:none;cursor:crosshair';
  const file = element('input', {id: 'image-file', type: 'file', accept: 'image/*'});
  const clear = element('button', {id: 'clear', type: 'button', textContent: 'Clear'});
  const run = element('button', {id: 'predict-image', type: 'button', textContent: 'Predict', disabled: true});
  const note = element('p', {className: 'sub', textContent:
    `Model input: ${height}×${width}, ${channels === 1 ? 'greyscale' : 'RGB'} pixels 0–255 ` +
    `(${spec.features[0].pixels.resize.split(' ')[0]} resize in the pipeline).`});
  const box = element('div', {id: 'image-ui'}, [pad, element('div', {className: 'actions'}, [file, clear, run]), note]);
  $('features').after(box);

  const ctx = pad.getContext('2d');
  const blank = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, pad.width, pad.height); };
  blank();
  let drawing = false;
  let source = pad;  // what is predicted: the pad, or the uploaded image as decoded
  const at = (e) => { const r = pad.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  pad.addEventListener('pointerdown', (e) => {
    if (source !== pad) { blank(); source = pad; }
    drawing = true;
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  pad.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    ctx.lineWidth = 22; ctx.lineCap = 'round'; ctx.strokeStyle = '#fff';
    ctx.lineTo(...at(e));
    ctx.stroke();
  });
  const stop = () => { if (drawing) { drawing = false; classify(); } };
  pad.addEventListener('pointerup', stop);
  pad.addEventListener('pointerleave', stop);
  clear.addEventListener('click', () => { blank(); source = pad; });

  const model = await loadModel(tf, 'model/model.json');
  showModel(tf, metadata, 'images', 'same class');

  function classify() {  // hoisted: the pad's handlers call it, also while the model loads
    return show(async () => {
      const pixels = pixelsOf(source, height, width, channels);
      const values = Array.from(await predict(tf, model, spec, {[input.name]: [pixels]}));
      const best = values.indexOf(Math.max(...values));
      const byName = spec.classes.map((c, i) => [c, values[i]])
        .sort(([a], [b]) => a.localeCompare(b, 'en', {numeric: true}));
      return {values, value: `${spec.classes[best]} (${(100 * values[best]).toFixed(1)}%)`,
        decision: byName.map(([c, p]) => `${c} ${(100 * p).toFixed(1)}%`).join(' · ')};
    });
  }
  run.addEventListener('click', classify);
  file.addEventListener('change', async () => {
    if (!file.files.length) return;
    try {
      // As decoded, no colour conversion: the pixels the pipeline's decoder reads from the file.
      source = await createImageBitmap(file.files[0], {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
    } catch (err) {
      const message = `${file.files[0].name}: not an image the browser can decode (${err.message || err})`;
      await show(() => { throw new Error(message); });
      return;
    }
    blank();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(source, 0, 0, pad.width, pad.height);  // preview, scaled up
    await classify();
  });
  run.disabled = false;
  document.body.dataset.ready = '1';
}
