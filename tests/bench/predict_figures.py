#!/usr/bin/python3
"""dpcnn-predict on image files against --idx, and MNIST-style preprocessing
against the seed article's plain resize (the figures of the checkpoint/predict
issue).

  /usr/bin/python3 tests/bench/predict_figures.py --checkpoint runs/mnist/checkpoints \
      --data data/mnist [--count 2000]

Writes every test digit three ways as PNG under runs/predict-figures/:
  plain/     the 28x28 digit as stored (white ink on black)
  inverted/  dark ink on a light background, placed off-centre on a 48x48 canvas
  photo/     the same, darker ink on grey paper, 2x larger (96x96)
then runs build/bin/dpcnn-predict --json on each set with --preprocess mnist and
--preprocess resize, and prints the accuracies next to --idx's.
"""

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def write_png(path, gray):
    """8-bit grayscale PNG, written with zlib alone (no imaging library)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def variants(img, i):
    """The digit as stored; inverted and off-centre; as a 'photo' on grey paper."""
    inv = np.full((48, 48), 255, np.uint8)
    dy, dx = 2 + (i * 7) % 16, 2 + (i * 11) % 16  # deterministic offsets
    inv[dy:dy + 28, dx:dx + 28] = 255 - img
    photo = np.full((96, 96), 200, np.uint8)
    big = np.kron(img, np.ones((2, 2), np.uint8)).astype(np.int32)
    oy, ox = 10 + (i * 5) % 30, 8 + (i * 3) % 30
    photo[oy:oy + 56, ox:ox + 56] = (200 - big * 170 // 255).astype(np.uint8)
    return {"plain": img, "inverted": inv, "photo": photo}


def predict(binary, ckpt, files, mode):
    out = subprocess.run(
        [binary, "--checkpoint", ckpt, "--json", "--preprocess", mode] + files,
        check=True, capture_output=True, text=True).stdout
    preds = {}
    for line in out.splitlines():
        obj = json.loads(line)
        preds[obj["file"]] = obj["prediction"]
    return preds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="runs/mnist/checkpoints")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--out", default="runs/predict-figures")
    ap.add_argument("--bin", default="build/bin/dpcnn-predict")
    a = ap.parse_args()

    images = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte"))[:a.count]
    labels = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte"))[:a.count]
    files = {k: [] for k in ("plain", "inverted", "photo")}
    for i, img in enumerate(images):
        for k, v in variants(img, i).items():
            d = os.path.join(a.out, k)
            os.makedirs(d, exist_ok=True)
            p = os.path.join(d, "%05d.png" % i)
            write_png(p, v)
            files[k].append(p)

    idx = subprocess.run(
        [a.bin, "--checkpoint", a.checkpoint, "--idx",
         os.path.join(a.data, "t10k-images-idx3-ubyte"),
         os.path.join(a.data, "t10k-labels-idx1-ubyte"), "--json"],
        check=True, capture_output=True, text=True).stdout.splitlines()
    idx_pred = []
    for line in idx:
        obj = json.loads(line)
        if "index" in obj:
            idx_pred.append(obj["prediction"])
    idx_pred = idx_pred[:a.count]
    idx_acc = float(np.mean(np.array(idx_pred) == labels))
    print("--idx on the IDX digits:            %.4f (%d digits)" % (idx_acc, len(labels)))
    for k in ("plain", "inverted", "photo"):
        for mode in ("mnist", "resize"):
            preds = predict(a.bin, a.checkpoint, files[k], mode)
            got = np.array([preds[f] for f in files[k]])
            acc = float(np.mean(got == labels))
            same = float(np.mean(got == np.array(idx_pred))) if k == "plain" else float("nan")
            extra = "  (agrees with --idx on %.2f%%)" % (100 * same) if k == "plain" else ""
            print("PNG %-8s --preprocess %-6s: %.4f%s" % (k, mode, acc, extra))


if __name__ == "__main__":
    sys.exit(main())
