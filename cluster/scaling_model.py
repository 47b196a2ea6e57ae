#!/usr/bin/env python3
"""The step-time model of cluster/scaling.md, fitted to cluster/bench-links.sh's
measurements (a directory: compute.jsonl, allreduce.tsv, links.jsonl).

  step(p) = C(b_rank, k) + t_ar(p)
  t_tree(p) = 2 L 3 alpha + L (n + m) beta,  L = ceil(log2 p)   (what dpcnn runs)
  t_ring(p) = 2 (p-1) alpha + 2 (p-1)/p n beta                 (for comparison)

C(b, k) = k C(b): compute of one step (data + forward/backward + optimizer) at
per-rank batch b, 1 thread, alone on a core (k = 1), or k ranks sharing it:
steps are synchronous, so the core does both ranks' work every step (the
calibration's two processes at once on one core are printed as a check). n = 373,288 bytes (93,322 float
gradients of configs/mnist.yaml) in buckets of m = 64 KB. dpcnn reduces each
bucket with an in-place MPI_Iallreduce, and Open MPI 4.1's libnbc runs every
in-place one as a binomial tree (reduce to rank 0, then broadcast: 2 L rounds);
the buckets are in flight together, so the root's link carries L n bytes each
way, plus one bucket to fill the pipeline. A 64 KB bucket is above the TCP
transport's eager limit (btl_tcp_eager_limit = 65,536 bytes with the header),
so each message goes rendezvous: three one-way trips (the first fragment, the
receiver's ACK, the rest), 3 alpha a round. alpha, beta: from the ping-pong on
the plain link (veth, or "tun" for the userspace emulator) at p = 2: alpha =
half the round trip of 4 bytes, beta from that of the 373,288 bytes. An
emulated link adds its one-way delay to alpha, and its rate caps the
bandwidth: beta = max(beta_plain, 8 / rate).
"""
import json
import math
import statistics
import sys
from collections import defaultdict

N_GRAD = 93322 * 4  # bytes: the seed model's gradient
BUCKET = 64 * 1024  # bytes: distributed.bucket_kb
GLOBAL_BATCH = 64


def link_of(label):
    """'veth', 'tun' or 'KIND:RATE/DELAY' (bench-links.sh): (plain link, one-way delay s, rate bit/s)."""
    base, _, spec = label.partition(":")
    base = "tun" if base == "tun" else "veth"  # netem:... runs on the veth
    if not spec:
        return base, 0.0, None
    rate, delay = spec.split("/")
    units = {"gbit": 1e9, "mbit": 1e6}
    r = next(float(rate[: -len(u)]) * m for u, m in units.items() if rate.endswith(u))
    return base, float(delay[:-2]) * 1e-6, r


RNDV_TRIPS = 3  # one-way trips of a message above btl_tcp_eager_limit (rendezvous)


def t_tree(p, a, b):
    L = math.ceil(math.log2(p))
    return 2 * L * RNDV_TRIPS * a + L * (N_GRAD + BUCKET) * b


def t_ring(p, a, b):
    return 2 * (p - 1) * a + 2 * (p - 1) / p * N_GRAD * b


def load(d):
    comp = defaultdict(list)
    for line in open(f"{d}/compute.jsonl"):
        r = json.loads(line)
        s = r["perf"]["step_ms"]
        comp[(r["b"], r["k"])].append((s["total"] - s["allreduce_wait"]) / 1e3)
    net = defaultdict(list)  # (link, kind, p, bytes) -> seconds
    steps = defaultdict(list)
    try:
        for line in open(f"{d}/allreduce.tsv"):
            f = line.split()
            kv = dict(x.split("=") for x in f[2:])
            net[(f[0], f[1], int(kv["ranks"]), int(kv["bytes"]))].append(float(kv["median_us"]) * 1e-6)
        for line in open(f"{d}/links.jsonl"):
            r = json.loads(line)
            steps[(r["link"], r["p"])].append(r["perf"])
    except FileNotFoundError:
        pass
    return comp, net, steps


def linfit(xs, ys):
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def main(d):
    comp, net, steps = load(d)
    C = {key: min(v) for key, v in comp.items()}  # the fastest run: the least disturbed
    bs = sorted(b for b, k in C if k == 1)
    c0, c1 = linfit(bs, [C[(b, 1)] for b in bs])
    print("compute, 1 rank x 1 thread (fastest of the runs; k = ranks sharing the core):")
    for b in bs:
        k2 = f"{C[(b, 2)] * 1e3:7.2f}" if (b, 2) in C else "    -"
        print(f"  b={b:3d}: k=1 {C[(b, 1)] * 1e3:7.2f} ms ({C[(b, 1)] / b * 1e3:.3f} ms/image)   k=2 {k2} ms")
    print(f"  fit k=1: C(b) = {c0 * 1e3:.2f} ms + {c1 * 1e3:.3f} ms x b")
    Cfit = lambda b: max(c0 + c1 * b, 0.0)
    fastest = lambda *key: min(net[key]) if key in net else None

    plain = {}
    for base in ("veth", "tun"):
        t4, tn = fastest(base, "pingpong", 2, 4), fastest(base, "pingpong", 2, N_GRAD)
        if t4 is None or tn is None:
            continue
        plain[base] = (t4, (tn - t4) / (N_GRAD - 4))
        print(f"\nplain link {base}, p=2, ping-pong (half round trip, median of 50, fastest run): "
              f"4 B {t4 * 1e6:.1f} us, 373,288 B {tn * 1e6:.1f} us\n  alpha = {t4 * 1e6:.1f} us, "
              f"beta = {plain[base][1] * 1e9:.3f} ns/B ({8 / plain[base][1] / 1e9:.1f} Gbit/s)")
    if not plain:
        return
    if "veth" in plain and "tun" in plain:
        print(f"  the userspace emulator's own latency (tun - veth): "
              f"{(plain['tun'][0] - plain['veth'][0]) * 1e6:.1f} us one way")

    def params(link):
        base, delay, rate = link_of(link)
        a, b = plain[base]
        return a + delay, max(b, 8 / rate) if rate else b

    links = sorted({k[0] for k in net if link_of(k[0])[0] in plain},
                   key=lambda l: (link_of(l)[0] != "veth", link_of(l)[1]))
    print("\nlinks: one-way latency (ping-pong, 4 B, p=2) and the gradient's allreduce, model vs measured (ms)")
    print(f"  {'link':16s} {'alpha us':>8s} {'meas us':>8s} {'p':>2s} {'tree':>7s} {'buckets':>8s} "
          f"{'ring':>7s} {'Allreduce':>9s}")
    for link in links:
        a, b = params(link)
        m4 = fastest(link, "pingpong", 2, 4)
        for p in (2, 3, 4):
            bk, ar = fastest(link, "buckets", p, N_GRAD), fastest(link, "allreduce", p, N_GRAD)
            f = lambda x: f"{x * 1e3:8.2f}" if x is not None else "       -"
            print(f"  {link:16s} {a * 1e6:8.1f} {m4 * 1e6 if m4 else float('nan'):8.1f} {p:2d} "
                  f"{t_tree(p, a, b) * 1e3:7.2f} {f(bk)} {t_ring(p, a, b) * 1e3:7.2f} {f(ar):>9s}")

    if steps:
        print("\nstep time, global batch 64, p hosts x 1 rank x 1 thread (4 hosts on 2 cores: k = 2 ranks "
              "share the busiest core for p >= 3), ms. predicted = C(b, k) calibrated + t_tree;\n"
              "  in-situ: the compute measured in the same run + the bucketed allreduce measured on that "
              "link (checks the composition step = compute + allreduce)")
        print(f"  {'link':16s} {'p':>2s} {'b':>3s} {'k':>2s} {'C(b,k)':>7s} {'t_tree':>7s} {'predicted':>9s} "
              f"{'measured':>8s} {'error':>6s} {'in-situ':>8s} {'error':>6s}  (compute, allreduce wait in run)")
        for link in links:
            a, b = params(link)
            for p in (2, 3, 4):
                runs = steps.get((link, p))
                if not runs:
                    continue
                br, k = math.ceil(GLOBAL_BATCH / p), 1 if p <= 2 else 2
                comp_t = k * C.get((br, 1), Cfit(br))  # a shared core does both ranks' work
                pred = comp_t + t_tree(p, a, b)
                st = min(runs, key=lambda r: r["step_ms"]["total"])["step_ms"]
                meas = st["total"] / 1e3
                insitu_c = (st["data"] + st["forward_backward"] + st["optimizer"]) / 1e3
                bk = fastest(link, "buckets", p, N_GRAD)
                insitu = insitu_c + bk if bk is not None else float("nan")
                err = lambda x: f"{100 * (x - meas) / meas:+5.0f}%"
                print(f"  {link:16s} {p:2d} {br:3d} {k:2d} {comp_t * 1e3:7.2f} {t_tree(p, a, b) * 1e3:7.2f} "
                      f"{pred * 1e3:9.2f} {meas * 1e3:8.2f} {err(pred)} {insitu * 1e3:8.2f} {err(insitu)}"
                      f"  ({insitu_c * 1e3:.2f}, {st['allreduce_wait']:.2f})")

    base = plain.get("veth", plain.get("tun"))
    print("\nprojections (C(b) fitted above: one core a host, 1 thread; alpha = the plain link's + the "
          "one-way delay, beta = max(plain, 8/rate))")
    for name, delay, rate in (("10 Gbit/s + 50 us", 50e-6, 10e9), ("100 Gbit/s + 20 us", 20e-6, 100e9)):
        a, b = base[0] + delay, max(base[1], 8 / rate)
        print(f"  {name}: alpha {a * 1e6:.1f} us, beta {b * 1e9:.3f} ns/B")
        for P in (8, 16, 64):
            row = []
            for t in (t_tree(P, a, b), t_ring(P, a, b)):
                strong = Cfit(GLOBAL_BATCH) / (P * (Cfit(GLOBAL_BATCH / P) + t))
                weak = Cfit(32) / (Cfit(32) + t)
                b90 = math.ceil(max((9 * t - c0) / c1, 1))
                row.append(f"t_ar {t * 1e3:6.2f} ms, strong {100 * strong:5.1f}%, weak(32) {100 * weak:5.1f}%, "
                           f"b90 {b90:3d}")
            print(f"    {P:3d} hosts: tree {row[0]} | ring {row[1]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dpcnn-bench-links")
