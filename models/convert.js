#!/usr/bin/env node
// models/convert.js — unwrap the two UMD modules that nsfwjs ships for its
// MobileNetV2 model into the standard TensorFlow.js layers-model files:
//
//   node convert.js <src dir with model.min.js + group1-shard1of1.min.js> <out dir>
//
// writes <out>/model.json ({format, modelTopology, weightsManifest}) and
// <out>/group1-shard1of1.bin (the decoded weights shard, uint8-quantised
// tensors back to back in manifest order).
//
// No npm dependencies: each UMD file is evaluated in a fresh vm context that
// only offers a fake CommonJS `module`/`exports` pair (no require, no fs, no
// process), so the package's code cannot touch anything; the export we read
// back is plain data (an object for the model, a base64 string for the shard).
// Output is written to temporary names and renamed, so an interrupted run
// never leaves a half-written file under the final name.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

function die(msg) {
  process.stderr.write(`convert.js: ${msg}\n`);
  process.exit(1);
}

function loadUmd(file) {
  const mod = { exports: {} };
  const sandbox = { module: mod, exports: mod.exports };
  vm.createContext(sandbox);
  vm.runInContext(fs.readFileSync(file, 'utf8'), sandbox, { filename: file, timeout: 30000 });
  return mod.exports;
}

function writeAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

const [src, out] = process.argv.slice(2);
if (!src || !out) die('usage: convert.js <src dir> <out dir>');

const model = loadUmd(path.join(src, 'model.min.js'));
if (!model || typeof model !== 'object' || !model.modelTopology || !Array.isArray(model.weightsManifest))
  die('model.min.js did not export {modelTopology, weightsManifest}');
if (model.weightsManifest.length !== 1) die('expected exactly one weights group');

const b64 = loadUmd(path.join(src, 'group1-shard1of1.min.js'));
if (typeof b64 !== 'string') die('group1-shard1of1.min.js did not export a base64 string');
const shard = Buffer.from(b64, 'base64');

// Cross-check the shard length against the manifest before writing anything.
const bytesPer = { uint8: 1, uint16: 2, float16: 2, float32: 4, int32: 4 };
let expect = 0;
for (const w of model.weightsManifest[0].weights) {
  const dt = (w.quantization && w.quantization.dtype) || w.dtype;
  if (!(dt in bytesPer)) die(`weight ${w.name}: unsupported dtype ${dt}`);
  expect += w.shape.reduce((a, b) => a * b, 1) * bytesPer[dt];
}
if (shard.length !== expect) die(`shard is ${shard.length} bytes, manifest needs ${expect}`);

const json = {
  format: 'layers-model',
  generatedBy: model.modelTopology.keras_version || 'keras',
  convertedBy: 'lookalike models/convert.js from nsfwjs dist/models/mobilenet_v2',
  modelTopology: model.modelTopology,
  weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: model.weightsManifest[0].weights }],
};

fs.mkdirSync(out, { recursive: true });
writeAtomic(path.join(out, 'group1-shard1of1.bin'), shard);
writeAtomic(path.join(out, 'model.json'), JSON.stringify(json));
process.stdout.write(`convert.js: wrote ${out}/model.json and group1-shard1of1.bin (${shard.length} bytes)\n`);
