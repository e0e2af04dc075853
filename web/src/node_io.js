// file:// model loading for TF.js in Node: the pure-JS @tensorflow/tfjs package loads models
// over http(s) or from browser storage only (its file system handler is in tfjs-node).
import {readFile} from 'node:fs/promises';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

// An IOHandler that reads model.json and its weight shards from the local file system.
export function fileHandler(tf, modelJsonPath) {
  return {
    async load() {
      const dir = path.dirname(modelJsonPath);
      let modelJSON;
      try {
        modelJSON = JSON.parse(await readFile(modelJsonPath, 'utf8'));
      } catch (err) {
        throw new Error(`cannot read the model ${modelJsonPath}: ${err.message}`);
      }
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs = [];
        const buffers = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const file = path.join(dir, p);
            try {
              buffers.push(await readFile(file));
            } catch (err) {
              throw new Error(`cannot read weights ${file} (listed in ${modelJsonPath}): ${err.message}`);
            }
          }
        }
        const all = Buffer.concat(buffers);
        return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
      });
    },
  };
}

// tf.loadGraphModel('file:///abs/path/model.json') works after this.
export function registerFileRouter(tf) {
  tf.io.registerLoadRouter((url) => {
    const s = Array.isArray(url) ? url[0] : url;
    return typeof s === 'string' && s.startsWith('file://') ? fileHandler(tf, fileURLToPath(s)) : null;
  });
}
