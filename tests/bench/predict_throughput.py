#!/usr/bin/python3
"""dpcnn-predict throughput beside PyTorch 1.13 inference of the same model.

Writes 10,000 digits (MNIST's train and test IDX files of --data, first 10,000)
as PNG files into one folder and as one IDX pair, then, interleaved over
--rounds rounds (medians reported):

  dpcnn folder   dpcnn-predict --top 1 FOLDER      (process start, checkpoint,
                 decoding with MNIST preprocessing, network, output; all of it)
  dpcnn idx      dpcnn-predict --idx IMAGES LABELS (IDX read, network, output),
                 in fp32 and (where the CPU has native bf16) --precision bf16
  torch folder   cv2.imread + /255 per file, then the model in batches of 64
  torch idx      the same uint8 array /255, the model in batches of 64

PyTorch runs the model dpcnn-export wrote (its initializers loaded into
torch.nn modules, so both run the same weights), on --threads threads
(torch.set_num_threads), under torch.inference_mode(), in fp32 and under
torch.autocast("cpu", dtype=torch.bfloat16). dpcnn uses all cores (OpenMP).
Prints a Markdown table, the load average before and after, dpcnn-predict's
per-batch time breakdown (--profile) and `RESULT {...}`.

  /usr/bin/python3 tests/bench/predict_throughput.py --checkpoint runs/mnist --data data/mnist
"""

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn


def read_idx(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path, a):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, a.ndim]))
        for d in a.shape:
            f.write(int(d).to_bytes(4, "big"))
        f.write(a.astype(np.uint8).tobytes())


def torch_model(onnx_path):
    """The exported graph as torch modules (the seed model's op types)."""
    m = onnx.load(onnx_path)
    init = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    layers = []
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv":
            w, b = init[n.input[1]], init[n.input[2]]
            pads = attrs.get("pads", [0, 0, 0, 0])
            if pads[0] != pads[2] or pads[1] != pads[3]:
                raise SystemExit("asymmetric padding: not in this peer")
            c = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(attrs["strides"]),
                          padding=(pads[0], pads[1]))
            c.weight.data, c.bias.data = w, b
            layers.append(c)
        elif n.op_type == "MaxPool":
            layers.append(nn.MaxPool2d(tuple(attrs["kernel_shape"]), tuple(attrs["strides"])))
        elif n.op_type == "Relu":
            layers.append(nn.ReLU())
        elif n.op_type == "Flatten":
            layers.append(nn.Flatten())
        elif n.op_type == "Gemm":
            w, b = init[n.input[1]], init[n.input[2]]
            d = nn.Linear(w.shape[1], w.shape[0])
            d.weight.data, d.bias.data = w, b
            layers.append(d)
        elif n.op_type == "Softmax":
            layers.append(nn.Softmax(dim=1))
        else:
            raise SystemExit(f"op {n.op_type}: not in this peer")
    return nn.Sequential(*layers).eval()


def timed(fn):
    """(wall seconds, CPU seconds of this process and its children)."""
    def cpu():
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    t0, c0 = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - t0, cpu() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="runs/mnist")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-threads", default="1,2",
                    help="PyTorch thread counts to run (the best is the peer: on a busy machine "
                         "its 2 threads wait for each other)")
    ap.add_argument("--work", default="", help="folder for the PNGs (default: a temp dir)")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="dpcnn-throughput-")
    imgs = np.concatenate([read_idx(os.path.join(args.data, "train-images-idx3-ubyte")),
                           read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte"))])[:args.count]
    labels = np.concatenate([read_idx(os.path.join(args.data, "train-labels-idx1-ubyte")),
                             read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte"))])[:args.count]
    n = len(imgs)
    folder = os.path.join(work, "png")
    os.makedirs(folder, exist_ok=True)
    files = [os.path.join(folder, f"{i:05d}.png") for i in range(n)]
    for f, im in zip(files, imgs):
        if not os.path.exists(f):
            cv2.imwrite(f, im)
    idx_images, idx_labels = os.path.join(work, "images-idx3-ubyte"), os.path.join(work, "labels-idx1-ubyte")
    write_idx(idx_images, imgs)
    write_idx(idx_labels, labels)
    onnx_path = os.path.join(work, "model.onnx")
    subprocess.run([os.path.join(args.bin, "dpcnn-export"), "--checkpoint", args.checkpoint, "-o", onnx_path],
                   check=True, capture_output=True)

    model = torch_model(onnx_path)

    def torch_run(x_u8, threads, bf16=False):
        torch.set_num_threads(threads)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for b in range(0, n, 64):
                x = torch.from_numpy(x_u8[b:b + 64].astype(np.float32) / 255.0).unsqueeze(1)
                model(x).argmax(1)

    def torch_folder(threads):
        x = np.stack([cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in sorted(files)])
        torch_run(x, threads)

    def dpcnn(*extra):
        subprocess.run([os.path.join(args.bin, "dpcnn-predict"), "--checkpoint", args.checkpoint, *extra],
                       check=True, stdout=subprocess.DEVNULL)

    cases = {
        "dpcnn-predict folder of PNGs": lambda: dpcnn("--top", "1", folder),
        "dpcnn-predict --idx": lambda: dpcnn("--idx", idx_images, idx_labels),
    }
    bf16 = any(f in open("/proc/cpuinfo").read() for f in (" avx512_bf16", " amx_bf16"))
    if bf16:
        cases["dpcnn-predict --idx --precision bf16"] = lambda: dpcnn(
            "--idx", idx_images, idx_labels, "--precision", "bf16")
    threads = [int(t) for t in args.torch_threads.split(",")]
    for t in threads:
        cases[f"PyTorch 1.13, {t} thread(s), PNGs (cv2.imread)"] = lambda t=t: torch_folder(t)
        cases[f"PyTorch 1.13, {t} thread(s), in-memory array"] = lambda t=t: torch_run(imgs, t)
        if bf16:
            cases[f"PyTorch 1.13 autocast bf16, {t} thread(s), in-memory array"] = \
                lambda t=t: torch_run(imgs, t, bf16=True)
    torch_run(imgs[:640], threads[0])  # warm-up: first-call allocations
    load_before = os.getloadavg()
    times = {k: [] for k in cases}
    cpus = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, fn in cases.items():
            wall, cpu_s = timed(fn)
            times[k].append(wall)
            cpus[k].append(cpu_s)
    rates = {k: n / statistics.median(v) for k, v in times.items()}
    # What the CPU time it used would give on otherwise idle cores: the
    # machine is shared, so wall-clock rates understate both tools.
    per_cpu = {k: n / statistics.median(v) for k, v in cpus.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    load_after = os.getloadavg()
    print(f"{n} images, {os.cpu_count()} cores ({cpu}), load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (1 min), median of {args.rounds} interleaved rounds\n")
    print("| what | images/s (wall) | seconds (median) | images per CPU-second | CPU-s |\n|---|---:|---:|---:|---:|")
    for k in cases:
        print(f"| {k} | {rates[k]:,.0f} | {statistics.median(times[k]):.3f} | {per_cpu[k]:,.0f} | "
              f"{statistics.median(cpus[k]):.2f} |")
    keys = list(cases)
    best = lambda table, kind: max(v for k, v in table.items() if k.startswith("PyTorch") and kind in k)
    print(f"\nagainst PyTorch's best: folder {rates[keys[0]] / best(rates, 'PNG'):.2f}x, "
          f"in memory {rates[keys[1]] / best(rates, 'memory'):.2f}x (wall); "
          f"per CPU-second {per_cpu[keys[0]] / best(per_cpu, 'PNG'):.2f}x, "
          f"{per_cpu[keys[1]] / best(per_cpu, 'memory'):.2f}x")
    # Where a batch's time goes (the first thread's copy of the network).
    breakdown = {}
    for prec in (["fp32", "bf16"] if bf16 else ["fp32"]):
        r = subprocess.run([os.path.join(args.bin, "dpcnn-predict"), "--checkpoint", args.checkpoint,
                            "--idx", idx_images, idx_labels, "--precision", prec, "--profile"],
                           capture_output=True, text=True)
        breakdown[prec] = r.stderr
        print(f"\ndpcnn-predict --idx --precision {prec} --profile:\n{r.stderr.rstrip()}")
    print("RESULT " + json.dumps({"images": n, "cpu": cpu, "rates": rates, "per_cpu_second": per_cpu,
                                  "times": times, "cpu_seconds": cpus, "load_before": load_before,
                                  "load_after": load_after, "breakdown": breakdown}))


if __name__ == "__main__":
    sys.exit(main())
