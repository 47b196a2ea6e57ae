#!/usr/bin/python3
"""Draws the per-epoch curves of runs in different precisions on one SVG
(the README's fp32 vs bf16 Fashion-MNIST figure): test accuracy and training
loss per epoch, one colour a run. Standard library only.

  tests/bench/precision_curves.py -o out.svg LABEL=RUN_DIR/metrics.jsonl ...
"""
import argparse
import json

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def read(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def panel(x0, title, series, key, fmt):
    """One 360x260 panel at x offset x0: `key` per epoch for each series."""
    w, h, left, top, bottom = 360, 260, 50, 30, 40
    pw, ph = w - left - 20, h - top - bottom
    vals = [m[key] for _, ms in series for m in ms]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.1 or 0.01
    lo, hi = lo - pad, hi + pad
    epochs = max(m["epoch"] for _, ms in series for m in ms)
    X = lambda e: x0 + left + (e - 1) / max(1, epochs - 1) * pw
    Y = lambda v: top + (hi - v) / (hi - lo) * ph
    out = [f'<text x="{x0 + left + pw / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
           f'<rect x="{x0 + left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<text x="{x0 + left - 4}" y="{Y(v) + 4:.1f}" text-anchor="end" font-size="10">{fmt(v)}</text>')
        out.append(f'<line x1="{x0 + left}" x2="{x0 + left + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>')
    for e in range(1, epochs + 1):
        out.append(f'<text x="{X(e):.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="10">{e}</text>')
    out.append(f'<text x="{x0 + left + pw / 2}" y="{top + ph + 30}" text-anchor="middle" font-size="11">epoch</text>')
    for (label, ms), c in zip(series, COLOURS):
        pts = " ".join(f"{X(m['epoch']):.1f},{Y(m[key]):.1f}" for m in ms)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        for m in ms:
            out.append(f'<circle cx="{X(m["epoch"]):.1f}" cy="{Y(m[key]):.1f}" r="3" fill="{c}"/>')
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--title", default="Fashion-MNIST, seed model, 5 epochs")
    ap.add_argument("runs", nargs="+", help="LABEL=path/to/metrics.jsonl")
    a = ap.parse_args()
    series = [(r.split("=", 1)[0], read(r.split("=", 1)[1])) for r in a.runs]
    body = panel(0, "test accuracy", series, "val_accuracy", lambda v: f"{100 * v:.1f}%")
    body += panel(370, "training loss", series, "loss", lambda v: f"{v:.3f}")
    legend = []
    for i, ((label, ms), c) in enumerate(zip(series, COLOURS)):
        y = 300 + 16 * i
        legend.append(f'<line x1="60" x2="80" y1="{y - 4}" y2="{y - 4}" stroke="{c}" stroke-width="2"/>')
        legend.append(f'<text x="86" y="{y}" font-size="11">{label}: final test accuracy '
                      f'{100 * ms[-1]["val_accuracy"]:.2f}%</text>')
    h = 300 + 16 * len(series) + 10
    svg = ([f'<svg xmlns="http://www.w3.org/2000/svg" width="740" height="{h}" font-family="sans-serif">',
            f'<rect width="740" height="{h}" fill="white"/>',
            f'<text x="370" y="{h - 4}" text-anchor="middle" font-size="10" fill="#666">{a.title}</text>']
           + body + legend + ["</svg>"])
    with open(a.out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
