#!/usr/bin/env python3
"""What data augmentation costs a training step.

Runs the seed model (configs/mnist-augment.yaml: shift 2.5 px, rotation 10
degrees, zoom 0.1) for a few hundred steps with augmentation on and off,
interleaved over several rounds, and prints from the worker's `perf` line
(which skips the first 5 steps) the median milliseconds a step spends in the
data phase (filling this rank's batch: with augmentation, the bilinear warp)
and in the whole step, and augmentation's share of the step:

    share = (data_ms(on) - data_ms(off)) / total_ms(off)

The data phase is timed on its own inside each step, so the share is robust
to a busy machine in a way the total is not.

    python3 tests/bench/augment_cost.py [--np 1] [--steps 300] [--rounds 3] [--threads 1]

Needs a build (build/bin/dpcnn-train) and data (scripts/fetch-data.sh mnist).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(np_, steps, threads, augment, runs_dir):
    cmd = [os.path.join(ROOT, "build/bin/dpcnn-train"), "--config",
           os.path.join(ROOT, "configs/mnist-augment.yaml"), "--progress", "lines", "--set",
           f"runs_dir={runs_dir}", f"train.max_steps={steps}", "train.eval=false",
           f"distributed.threads_per_rank={threads}"]
    if np_ > 1:
        cmd = [os.path.join(ROOT, "scripts/mpirun.sh"), "-np", str(np_)] + cmd
    if not augment:
        cmd += ["data.augment.shift=0", "data.augment.rotation=0", "data.augment.scale=0"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"dpcnn-train failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    m = re.search(r"^perf (\{.*\})$", out.stdout, re.M)
    return json.loads(m.group(1))["step_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--np", type=int, default=1)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    res = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="dpcnn-augment-cost-") as runs:
        for _ in range(a.rounds):
            for aug in (False, True):
                res[aug].append(run(a.np, a.steps, a.threads, aug, runs))
    med = {k: {f: statistics.median(r[f] for r in v) for f in ("data", "total")}
           for k, v in res.items()}
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"cpu: {cpu}; load average: {load}; {a.np} rank(s) x {a.threads} thread(s), "
          f"{a.steps} steps x {a.rounds} rounds, global batch 64")
    for k, name in ((False, "augment off"), (True, "augment on ")):
        print(f"{name}: data {med[k]['data']:.3f} ms/step, step {med[k]['total']:.3f} ms")
    share = (med[True]["data"] - med[False]["data"]) / med[False]["total"]
    print(f"augmentation: {1e3 * (med[True]['data'] - med[False]['data']) / 64 * a.np:.1f} us/image, "
          f"{100 * share:.2f}% of a step")


if __name__ == "__main__":
    main()
