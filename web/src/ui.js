// What the demo pages share on the page (app.js: a tabular or text form; image.js: upload and
// drawing): loading the model on the validated backend, the line that says how it was validated,
// and one prediction's answer or error. Pushed beside app.js (TFJSConverter's write_page).

const $ = (id) => document.getElementById(id);

// The graph model on the backend it was validated on (cpu: the same kernels as in Node) unless
// the URL asks for another (?backend=webgl): a GPU's float precision is the device's, not the validation's.
export async function loadModel(tf, modelJson) {
  const backend = new URLSearchParams(window.location.search).get('backend') || 'cpu';
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend '${backend}' is not available here`);
  await tf.ready();
  return tf.loadGraphModel(modelJson);
}

// Subtitle and footer of a loaded model: its validation (on `what`: rows, images) and its sizes.
export function showModel(tf, metadata, what, agreement) {
  const v = metadata.validation;
  $('subtitle').textContent = `Model loaded (${tf.getBackend()} backend). Validated on ${v.examples} ${v.split} ` +
    `${what}: max |Δ| ${v.max_abs_diff.toExponential(2)} vs the SavedModel, ${agreement} ` +
    `on ${(100 * v.agreement).toFixed(1)}%.`;
  $('footer').textContent = `model ${(metadata.sizes.model_bytes / 1024).toFixed(1)} KB ` +
    `(${(metadata.sizes.model_gzip_bytes / 1024).toFixed(1)} KB gzipped), quantization ${metadata.quantization}, ` +
    `@tensorflow/tfjs ${tf.version.tfjs}`;
}

// A function that shows one answer: `compute()` gives {values, value, decision} (every output
// value, the headline, the line under it) or throws (its message is shown instead). #probability's
// data-value holds the values (empty after an error) and data-count the number of answers so far,
// which the Chromium drivers (web/test/demo_page.js) wait for.
export function answerer() {
  let count = 0;
  return async (compute) => {
    const out = $('probability');
    out.dataset.state = 'busy';
    try {
      const {values, value, decision} = await compute();
      out.dataset.value = values.join(',');
      out.value = value;
      $('decision').textContent = decision;
      $('decision').className = '';
    } catch (err) {
      out.value = '';
      out.dataset.value = '';
      $('decision').textContent = String(err.message || err);
      $('decision').className = 'error';
    }
    count += 1;
    out.dataset.count = String(count);
    out.dataset.state = 'done';
  };
}
