#!/usr/bin/env python3
"""What synchronized BatchNorm costs a training step.

Runs configs/mnist-bn.yaml (the seed model with BatchNorm after each of its
three convolutions) under mpirun with the same rank count, once with every
BatchNorm layer `sync: true` (the default: statistics of the global batch,
two small allreduces a layer a step) and once with `sync: false` (each rank's
slice statistics, no communication), interleaved over several rounds, and
prints the median step time of each from the worker's `perf` line (which
skips the first 5 steps).

On a busy machine the step time mostly measures waiting: each of the six
blocking reductions a step waits for the slower rank. `--primitives` also
runs each configuration with ONEDNN_VERBOSE and sums, per step, the median
execution time of every training primitive (convolutions, batch
normalisations, the correction's add, ...): the compute part of the cost,
robust to load spikes.

    python3 tests/bench/bn_sync_cost.py [--np 2] [--steps 150] [--rounds 5]

Needs a build (build/bin/dpcnn-train) and data (scripts/fetch-data.sh mnist).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BN_LAYERS = (1, 5, 9)  # indices of the batchnorm layers in configs/mnist-bn.yaml


def run(np_, steps, sync, data, runs_dir, verbose=False):
    sets = [f"model.layers[{i}].sync={'true' if sync else 'false'}" for i in BN_LAYERS]
    cmd = [os.path.join(ROOT, "scripts/mpirun.sh"), "-np", str(np_),
           os.path.join(ROOT, "build/bin/dpcnn-train"), "--config",
           os.path.join(ROOT, "configs/mnist-bn.yaml"), "--progress", "lines", "--set",
           f"data.dir={data}", f"runs_dir={runs_dir}", f"train.max_steps={steps}",
           "train.epochs=100", "train.eval=false", "distributed.threads_per_rank=1", *sets]
    env = dict(os.environ, ONEDNN_VERBOSE="1") if verbose else None
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    m = re.search(r"^perf (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        sys.exit(f"bn_sync_cost: the run failed ({' '.join(cmd)}):\n{out.stdout}\n{out.stderr}")
    if verbose:
        return primitive_ms(out.stdout, np_ * steps)
    return json.loads(m.group(1))["step_ms"]


def primitive_ms(log, rank_steps):
    """Per kind of training primitive: sum over shapes of median time x count, per step."""
    # Both ranks write to one stream, so a line can be cut by the other's:
    # only whole lines of a known primitive count (medians do not mind a few lost).
    kinds = {"convolution", "batch_normalization", "binary", "eltwise", "inner_product",
             "pooling_v2", "reorder", "softmax_v2"}
    times = {}
    for line in log.splitlines():
        f = line.split(",")
        if len(f) < 10 or f[:3] != ["onednn_verbose", "exec", "cpu"] or f[3] not in kinds:
            continue
        if "inference" in f[5] or not re.fullmatch(r"[0-9.]+", f[-1]):
            continue
        times.setdefault((f[3], f[5], f[-2]), []).append(float(f[-1]))
    per_kind = {}
    for (kind, _, _), t in times.items():
        per_kind[kind] = per_kind.get(kind, 0.0) + statistics.median(t) * len(t) / rank_steps
    return per_kind


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", default=os.path.join(ROOT, "data/mnist"))
    ap.add_argument("--runs-dir", default="/tmp/dpcnn-bn-sync-cost")
    ap.add_argument("--primitives", action="store_true",
                    help="also measure the compute part (ONEDNN_VERBOSE medians)")
    a = ap.parse_args()
    res = {True: [], False: []}
    for r in range(a.rounds):
        for sync in (True, False) if r % 2 == 0 else (False, True):
            res[sync].append(run(a.np, a.steps, sync, a.data, a.runs_dir))
    med = {s: {k: statistics.median(x[k] for x in res[s]) for k in res[s][0]} for s in res}
    for s in (False, True):
        m = med[s]
        print(f"sync {'true ' if s else 'false'}: step {m['total']:.3f} ms "
              f"(forward+backward {m['forward_backward']:.3f}, allreduce wait "
              f"{m['allreduce_wait']:.3f}), median of {a.rounds}")
    d = med[True]["total"] - med[False]["total"]
    print(f"BatchNorm sync cost: {d:+.3f} ms a step ({100 * d / med[False]['total']:+.1f}%), "
          f"{a.np} ranks, global batch 64, 3 BatchNorm layers")
    print("all rounds (total ms): sync true " +
          " ".join(f"{x['total']:.2f}" for x in res[True]) + "; sync false " +
          " ".join(f"{x['total']:.2f}" for x in res[False]))
    if a.primitives:
        prim = {s: run(a.np, a.steps, s, a.data, a.runs_dir, verbose=True) for s in (False, True)}
        for s in (False, True):
            p = prim[s]
            print(f"sync {'true ' if s else 'false'}: oneDNN {sum(p.values()):.3f} ms a step (" +
                  ", ".join(f"{k} {v:.3f}" for k, v in sorted(p.items())) + ")")
        print(f"compute added by sync: {sum(prim[True].values()) - sum(prim[False].values()):+.3f} "
              "ms a step (medians of each primitive's executions)")


if __name__ == "__main__":
    main()
