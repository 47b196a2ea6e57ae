#!/usr/bin/env python3
"""The step-time model of cluster/scaling.md, fitted to cluster/bench-links.sh's
measurements (a directory: compute.jsonl, allreduce.tsv, links.jsonl).

  step(p) = C(b_rank, k) + t_ring(p, n)
  t_ring(p, n) = 2(p-1) alpha + 2(p-1)/p * n * beta       (ring allreduce)

C(b, k): compute of one step (data + forward/backward + optimizer) at per-rank
batch b, 1 thread, with k ranks sharing a core; n = 373,288 bytes (93,322
float gradients of configs/mnist.yaml). alpha, beta: from the plain veth at p = 2
(no core shared): alpha from a 4-byte allreduce, beta from the gradient's. A netem link adds its one-way delay to alpha, and
its rate caps the bandwidth: beta = max(beta_veth, 8 / rate).
"""
import json
import math
import statistics
import sys
from collections import defaultdict

N_GRAD = 93322 * 4  # bytes: the seed model's gradient
GLOBAL_BATCH = 64


def link_of(label):
    """'veth' or 'RATE/DELAY' as bench-links.sh applied it: (one-way delay s, rate bit/s)."""
    if label == "veth":
        return 0.0, None
    rate, delay = label.split("/")
    units = {"gbit": 1e9, "mbit": 1e6}
    r = next(float(rate[: -len(u)]) * m for u, m in units.items() if rate.endswith(u))
    return float(delay[:-2]) * 1e-6, r


def load(d):
    comp = defaultdict(list)
    for line in open(f"{d}/compute.jsonl"):
        r = json.loads(line)
        s = r["perf"]["step_ms"]
        comp[(r["b"], r["k"])].append((s["total"] - s["allreduce_wait"]) / 1e3)
    ar = defaultdict(list)
    try:
        for line in open(f"{d}/allreduce.tsv"):
            f = line.split()
            kv = dict(x.split("=") for x in f[2:])
            ar[(f[0], int(kv["ranks"]), int(kv["bytes"]))].append(float(kv["median_us"]) * 1e-6)
    except FileNotFoundError:
        pass
    steps = defaultdict(list)
    try:
        for line in open(f"{d}/links.jsonl"):
            r = json.loads(line)
            steps[(r["link"], r["p"])].append(r["perf"])
    except FileNotFoundError:
        pass
    return comp, ar, steps


def linfit(xs, ys):
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - slope * mx, slope


def main(d):
    comp, ar, steps = load(d)
    C = {key: min(v) for key, v in comp.items()}
    bs = sorted(b for b, k in C if k == 1)
    c0, c1 = linfit(bs, [C[(b, 1)] for b in bs])
    print(f"compute, 1 rank x 1 thread (fastest of the runs; k = ranks sharing the core):")
    for b in bs:
        k2 = f"{C[(b, 2)] * 1e3:7.2f}" if (b, 2) in C else "    -"
        print(f"  b={b:3d}: k=1 {C[(b, 1)] * 1e3:7.2f} ms ({C[(b, 1)] / b * 1e3:.3f} ms/image)   k=2 {k2} ms")
    print(f"  fit k=1: C(b) = {c0 * 1e3:.2f} ms + {c1 * 1e3:.3f} ms x b")
    Cfit = lambda b: max(c0 + c1 * b, 0.0)

    if not ar:
        return
    # alpha, beta from the plain veth at p = 2 (t = 2 alpha + n beta): alpha
    # from the 4-byte allreduce, beta from the gradient's own size (larger
    # messages leave the range the model is for: see allreduce.tsv).
    sizes = sorted(n for (l, p, n) in ar if l == "veth" and p == 2)
    ts = {n: min(ar[("veth", 2, n)]) for n in sizes}
    alpha = ts[4] / 2
    beta = (ts[N_GRAD] - 2 * alpha) / N_GRAD
    print(f"\nallreduce on plain veth, p=2: " +
          ", ".join(f"{n} B {t * 1e6:.0f} us" for n, t in ts.items()))
    print(f"  ring at p=2 (2 alpha + n beta): alpha = {alpha * 1e6:.1f} us (4 B), "
          f"beta = {beta * 1e9:.3f} ns/B = {8 / beta / 1e9:.1f} Gbit/s (373,288 B)")

    def link_params(link):
        delay, rate = link_of(link)
        return alpha + delay, max(beta, 8 / rate) if rate else beta

    def t_ring(p, n, a, b):
        return 2 * (p - 1) * a + 2 * (p - 1) / p * n * b

    print("\nallreduce of the 373,288-byte gradient: ring model vs measured (MPI_Allreduce: median of 50, fastest run)")
    print(f"  {'link':12s} {'p':>2s} {'model ms':>9s} {'measured':>9s}")
    links = sorted({l for (l, p, n) in ar}, key=lambda l: (l != "veth", -link_of(l)[1] if l != "veth" else 0))
    for link in links:
        a, b = link_params(link)
        for p in (2, 3, 4):
            m = ar.get((link, p, N_GRAD))
            ms = f"{min(m) * 1e3:9.2f}" if m else "        -"
            print(f"  {link:12s} {p:2d} {t_ring(p, N_GRAD, a, b) * 1e3:9.2f} {ms}")

    if steps:
        print("\nstep time, global batch 64, p hosts x 1 rank x 1 thread (4 hosts on 2 cores: "
              "k = 2 ranks share the busiest core for p >= 3)")
        print("  predicted A: compute from the calibration + ring allreduce;  B: compute as measured "
              "in the same run (forward/backward + optimizer) + ring allreduce;\n"
              "  C: compute as in B + the allreduce as measured on that link (MPI_Allreduce above): "
              "checks step = compute + allreduce (what overlap hides) apart from the link model")
        print(f"  {'link':12s} {'p':>2s} {'b/rank':>6s} {'k':>2s} {'compute':>8s} {'allreduce':>9s} "
              f"{'pred A':>8s} {'pred B':>8s} {'pred C':>8s} {'measured':>9s} {'err A':>6s} {'err B':>6s} "
              f"{'err C':>6s}  (ms; dpcnn's allreduce wait)")
        for link in links:
            a, b = link_params(link)
            for p in (2, 3, 4):
                runs = steps.get((link, p))
                if not runs:
                    continue
                br = math.ceil(GLOBAL_BATCH / p)
                k = 1 if p <= 2 else 2
                comp_t = C.get((br, k), Cfit(br) * k)
                pred = comp_t + t_ring(p, N_GRAD, a, b)
                best = min(runs, key=lambda r: r["step_ms"]["total"])
                meas = best["step_ms"]["total"] / 1e3
                wait = best["step_ms"]["allreduce_wait"]
                st = best["step_ms"]
                insitu = (st["data"] + st["forward_backward"] + st["optimizer"]) / 1e3
                pred_b = insitu + t_ring(p, N_GRAD, a, b)
                m_ar = ar.get((link, p, N_GRAD))
                pred_c = insitu + min(m_ar) if m_ar else float("nan")
                err = lambda x: f"{100 * (x - meas) / meas:+5.0f}%"
                print(f"  {link:12s} {p:2d} {br:6d} {k:2d} {comp_t * 1e3:8.2f} "
                      f"{t_ring(p, N_GRAD, a, b) * 1e3:9.2f} {pred * 1e3:8.2f} {pred_b * 1e3:8.2f} "
                      f"{pred_c * 1e3:8.2f} {meas * 1e3:9.2f} {err(pred)} {err(pred_b)} {err(pred_c)}"
                      f"  ({wait:.2f})")

    print("\nprojections (ring model; C(b) fitted above: one core a host, 1 thread)")
    nets = {"10 Gbit/s, alpha 50 us": (50e-6, max(beta, 8 / 10e9)),
            "100 Gbit/s, alpha 20 us": (20e-6, max(beta, 8 / 100e9))}
    for name, (a, b) in nets.items():
        print(f"  {name} (beta {b * 1e9:.3f} ns/B):")
        for P in (8, 16, 64):
            t = t_ring(P, N_GRAD, a, b)
            strong = Cfit(GLOBAL_BATCH) / (P * (Cfit(GLOBAL_BATCH / P) + t))
            weak = Cfit(32) / (Cfit(32) + t)
            b90 = max((9 * t - c0) / c1, 1) if c1 > 0 else float("nan")
            print(f"    {P:3d} hosts: allreduce {t * 1e3:6.2f} ms; strong scaling (batch 64) "
                  f"efficiency {100 * strong:5.1f}%; weak (32/rank) {100 * weak:5.1f}%; "
                  f"per-rank batch for 90% weak: {math.ceil(b90)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dpcnn-bench-links")
