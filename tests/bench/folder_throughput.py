#!/usr/bin/python3
"""Image-folder loading: how fast a folder of PNGs becomes training data.

Writes the 70,000 images of an MNIST-layout IDX set (--data, default
data/fashion-mnist: 60,000 train + 10,000 test, 28x28) as PNG files in class
folders with `dpcnn-dataset to-folder`, then measures, interleaved over
--rounds rounds (medians reported):

  cache build     dpcnn-dataset to-idx FOLDER OUT (scan, decode every PNG on
                  all cores, write the IDX cache: the code data.format: folder
                  runs on a changed folder)
  train start     dpcnn-train, 1 step, no evaluation: from the IDX files, from
                  the folder with a cold cache (decoded), and with a warm one
  cv2 peer        cv2.imread of every file into one uint8 array, one thread (what
                  a PyTorch ImageFolder-style loader does per image)

Prints a Markdown table with images/s, the CPU model and load average, and
`RESULT {...}`.

  /usr/bin/python3 tests/bench/folder_throughput.py --data data/fashion-mnist
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(fn):
    def cpu():
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    t0, c0 = time.perf_counter(), cpu()
    out = fn()
    return time.perf_counter() - t0, cpu() - c0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--config", default="configs/mnist.yaml",
                    help="the model (its data.class_names must fit the folder names, 0..9)")
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="", help="scratch folder (default: a temp dir, removed)")
    ap.add_argument("--no-cv2", action="store_true")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="dpcnn-folder-bench-")
    folder = os.path.join(work, "folder")
    b = lambda tool: os.path.join(args.bin, tool)

    if not os.path.isdir(folder):
        wall, _, _ = timed(lambda: subprocess.run([b("dpcnn-dataset"), "to-folder", args.data, folder],
                                                  check=True, stdout=subprocess.DEVNULL))
        print(f"wrote the PNG folder in {wall:.1f} s", file=sys.stderr)
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".png"))
    n = len(files)
    cache = os.path.join(folder, ".dpcnn-cache")
    runs = os.path.join(work, "runs")

    def to_idx():
        out = os.path.join(work, "idx-out")
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([b("dpcnn-dataset"), "to-idx", folder, out], check=True, stdout=subprocess.DEVNULL)

    def train(*sets):
        r = subprocess.run([b("dpcnn-train"), "--config", args.config, "--set", f"runs_dir={runs}",
                            "train.max_steps=1", "train.eval=false", *sets],
                           check=True, capture_output=True, text=True)
        m = re.search(r"image folder .*\(([0-9.]+) s\)", r.stdout)
        return float(m.group(1)) if m else None

    folder_sets = ["data.format=folder", f"data.dir={folder}", "data.preprocess=none"]

    def cold():
        shutil.rmtree(cache, ignore_errors=True)
        return train(*folder_sets)

    def cv2_read():
        import cv2
        import numpy as np
        np.stack([cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files])

    cases = {
        "cache build (dpcnn-dataset to-idx, all cores)": to_idx,
        "dpcnn-train start, IDX files": lambda: train(f"data.dir={args.data}"),
        "dpcnn-train start, folder, cold cache (decodes)": cold,
        "dpcnn-train start, folder, warm cache": lambda: train(*folder_sets),
    }
    if not args.no_cv2:
        cases["cv2.imread every PNG, 1 thread (peer)"] = cv2_read
    times = {k: [] for k in cases}
    cpus = {k: [] for k in cases}
    stage = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, fn in cases.items():
            wall, cpu_s, out = timed(fn)
            times[k].append(wall)
            cpus[k].append(cpu_s)
            if isinstance(out, float):
                stage[k].append(out)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{n} PNG files ({args.data}), {os.cpu_count()} cores ({cpu}), load average "
          f"{os.getloadavg()[0]:.1f}, median of {args.rounds} interleaved rounds\n")
    print("| what | seconds (wall) | images/s (wall) | folder load inside (s) | CPU-s |\n|---|---:|---:|---:|---:|")
    result = {}
    for k in cases:
        w = statistics.median(times[k])
        s = f"{statistics.median(stage[k]):.2f}" if stage[k] else "-"
        print(f"| {k} | {w:.2f} | {n / w:,.0f} | {s} | {statistics.median(cpus[k]):.2f} |")
        result[k] = {"seconds": w, "images_per_sec": n / w, "cpu_seconds": statistics.median(cpus[k]),
                     "folder_load_seconds": statistics.median(stage[k]) if stage[k] else None}
    print("RESULT " + json.dumps({"images": n, "cpu": cpu, "load": os.getloadavg()[0], "cases": result}))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
