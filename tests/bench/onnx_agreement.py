#!/usr/bin/python3
"""dpcnn-export checked in runtimes no one here wrote.

Exports a checkpoint with build/bin/dpcnn-export, checks the file with the ONNX
checker (python3-onnx, full_check: schema and shape inference), runs it with
OpenCV's DNN module (python3-opencv, cv2.dnn.readNetFromONNX) on every image
of an IDX test set, and compares the probabilities with
`dpcnn-predict --idx ... --json` on the same images: the largest |p| difference
over all images and classes, and how many predicted classes differ. Also checks
the metadata (class names, dpcnn version) and that dpcnn's probabilities sum to
1 and never exceed it.

  /usr/bin/python3 tests/bench/onnx_agreement.py --checkpoint runs/mnist \
      --data data/mnist [--tolerance 1e-4]

Prints one line `RESULT {...}` (JSON) and exits 0 when the difference is within
--tolerance, 1 when not, 77 when python3-onnx or python3-opencv is missing
(ctest treats 77 as skipped). Use /usr/bin/python3: Debian's modules.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    import cv2
except ImportError as e:  # the test is skipped, with the reason
    print(f"onnx_agreement: skipped: {e} (install python3-onnx python3-opencv)")
    sys.exit(77)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path, opener = path + ".gz", gzip.open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="folder with t10k-{images-idx3,labels-idx1}-ubyte")
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=500, help="images per OpenCV forward")
    ap.add_argument("--expect-class-names", default="",
                    help="comma-separated names the metadata must hold")
    args = ap.parse_args()

    images_path = os.path.join(args.data, "t10k-images-idx3-ubyte")
    labels_path = os.path.join(args.data, "t10k-labels-idx1-ubyte")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "model.onnx")
        subprocess.run([os.path.join(args.bin, "dpcnn-export"), "--checkpoint", args.checkpoint,
                        "-o", model_path], check=True)
        model = onnx.load(model_path)
        onnx.checker.check_model(model, full_check=True)
        meta = {p.key: p.value for p in model.metadata_props}
        names = json.loads(meta["class_names"])
        if args.expect_class_names and names != args.expect_class_names.split(","):
            print(f"onnx_agreement: metadata class_names {names} != {args.expect_class_names}")
            return 1
        if not meta.get("dpcnn_version"):
            print("onnx_agreement: no dpcnn_version in the metadata")
            return 1

        pred = subprocess.run([os.path.join(args.bin, "dpcnn-predict"), "--checkpoint",
                               args.checkpoint, "--json", "--idx", images_path, labels_path],
                              check=True, capture_output=True, text=True).stdout
        rows = [json.loads(l) for l in pred.splitlines() if l.startswith('{"index"')]
        p_dpcnn = np.array([r["probabilities"] for r in rows], dtype=np.float64)

        x = read_idx(images_path).astype(np.float32)[:, None, :, :] / np.float32(255)
        net = cv2.dnn.readNetFromONNX(model_path)
        out = []
        for b in range(0, len(x), args.batch):
            net.setInput(x[b:b + args.batch])
            out.append(net.forward().astype(np.float64))
        p_cv = np.concatenate(out)

    labels = read_idx(labels_path)
    if p_cv.shape != p_dpcnn.shape:
        print(f"onnx_agreement: shapes differ: OpenCV {p_cv.shape}, dpcnn-predict {p_dpcnn.shape}")
        return 1
    diff = np.abs(p_cv - p_dpcnn)
    result = {
        "images": len(x), "classes": p_cv.shape[1], "opset": model.opset_import[0].version,
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "argmax_disagree": int((p_cv.argmax(1) != p_dpcnn.argmax(1)).sum()),
        "accuracy_dpcnn": float((p_dpcnn.argmax(1) == labels).mean()),
        "accuracy_opencv": float((p_cv.argmax(1) == labels).mean()),
        "dpcnn_max_p": float(p_dpcnn.max()),
        "dpcnn_max_sum_error": float(np.abs(p_dpcnn.sum(1) - 1).max()),
        "tolerance": args.tolerance, "opencv": cv2.__version__, "onnx": onnx.__version__,
        "class_names": names,
    }
    print("RESULT " + json.dumps(result))
    ok = diff.max() <= args.tolerance and p_dpcnn.max() <= 1.0 and \
        result["dpcnn_max_sum_error"] <= 1e-6
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
