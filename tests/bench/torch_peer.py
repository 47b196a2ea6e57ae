#!/usr/bin/python3
"""PyTorch peer benchmark for dpcnn (see tests/bench/README.md).

Single process:
  /usr/bin/python3 tests/bench/torch_peer.py --model seed --batch 64 --threads 1
Data-parallel (2 ranks, gloo, 1 thread each):
  /usr/bin/python3 -m torch.distributed.run --nproc_per_node 2 --redirects 1 --tee 1 \
      tests/bench/torch_peer.py --ddp --model seed --batch 64

Human-readable lines go to stderr; rank 0 prints exactly one line to stdout:
  RESULT {"impl":"torch","mode":...,"images_per_sec":...,...}
--batch is the GLOBAL batch; under --ddp each rank takes batch/world_size.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# IDX / MNIST loading (raw files preferred over .gz)

def _open_idx(data_dir, name):
    raw = os.path.join(data_dir, name)
    if os.path.exists(raw):
        with open(raw, "rb") as f:
            return f.read()
    gz = raw + ".gz"
    if os.path.exists(gz):
        with gzip.open(gz, "rb") as f:
            return f.read()
    raise FileNotFoundError(f"neither {raw} nor {gz} exists")


def read_idx(data_dir, name):
    buf = _open_idx(data_dir, name)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise ValueError(f"{name}: bad IDX magic")
    if buf[2] != 0x08:
        raise ValueError(f"{name}: only uint8 IDX supported (type 0x{buf[2]:02x})")
    ndim = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 0
    if len(buf) - off < count:
        raise ValueError(f"{name}: truncated ({len(buf) - off} < {count} bytes)")
    return np.frombuffer(buf, dtype=np.uint8, count=count, offset=off).reshape(dims)


def load_split(data_dir, prefix):
    images = read_idx(data_dir, f"{prefix}-images-idx3-ubyte")
    labels = read_idx(data_dir, f"{prefix}-labels-idx1-ubyte")
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{prefix}: inconsistent shapes {images.shape} {labels.shape}")
    # Keep uint8 (N,1,H,W); batches are converted to float/255 on the fly.
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


# ----------------------------------------------------------------------------
# Models

def build_model(name):
    if name == "seed":  # = configs/mnist.yaml
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(576, 64), nn.ReLU(),
            nn.Linear(64, 10),
        )
    if name == "small":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(5408, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )
    raise ValueError(name)


def keras_init(model):
    """glorot_uniform weights, zero biases (Keras defaults)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------
# BLAS detection

def detect_blas():
    """Which BLAS library torch actually loaded (inspects /proc/self/maps after
    a float32 GEMM). Debian's torch links libblas.so.3, resolved through the
    libblas.so.3-x86_64-linux-gnu alternative."""
    a = torch.ones(64, 64)
    (a @ a).sum().item()
    info = {"blas": "unknown", "libblas": None, "openblas_config": None}
    try:
        paths = set()
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[-1].startswith("/"):
                    paths.add(parts[-1])
    except OSError:
        return info
    libblas = sorted(p for p in paths if "libblas.so" in p)
    openblas = sorted(p for p in paths if "libopenblas" in p)
    mkl = sorted(p for p in paths if "libmkl" in p)
    # libtorch_cpu links libblas.so.3 first, so sgemm_ binds there; a
    # libopenblas.so.0 may also be mapped merely via liblapack.so.3.
    if libblas:
        info["libblas"] = os.path.realpath(libblas[0])
        where = info["libblas"]
    elif openblas:
        where = openblas[0]
    elif mkl:
        info["blas"] = "mkl"
        return info
    else:
        return info
    if "openblas" in where:
        info["blas"] = "openblas"
        for variant in ("openmp", "pthread", "serial"):
            if "openblas-" + variant in where:
                info["blas"] = "openblas-" + variant
        try:
            import ctypes
            lib = ctypes.CDLL(where)
            lib.openblas_get_config.restype = ctypes.c_char_p
            info["openblas_config"] = lib.openblas_get_config().decode()
        except Exception:  # noqa: BLE001 - purely informational
            pass
    elif "/blas/" in where:
        info["blas"] = "reference"
    elif "blis" in where:
        info["blas"] = "blis"
    elif "atlas" in where:
        info["blas"] = "atlas"
    else:
        info["blas"] = os.path.basename(where)
    return info


# ----------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description="PyTorch peer benchmark for dpcnn")
    p.add_argument("--data", default="data/mnist", help="directory with MNIST-format IDX files")
    p.add_argument("--model", choices=["seed", "small"], default="seed")
    p.add_argument("--batch", type=int, default=64, help="GLOBAL batch size")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    p.add_argument("--steps", type=int, default=200, help="timed steps")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up steps")
    p.add_argument("--epochs", type=int, default=None,
                   help="train full epochs (instead of --steps) and report test accuracy")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--init", choices=["keras", "torch"], default="keras",
                   help="weight init: keras = glorot_uniform + zero bias (default), torch = PyTorch default")
    p.add_argument("--ddp", action="store_true", help="run under torch.distributed.run (gloo, DDP)")
    p.add_argument("--bf16", action="store_true",
                   help='mixed precision: forward under torch.autocast("cpu", dtype=torch.bfloat16), '
                        "denormals flushed (the peer's fastest bf16 setting)")
    return p.parse_args()


def main():
    args = parse_args()

    # Must precede any parallel work.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)

    rank, world = 0, 1
    if args.ddp:
        import torch.distributed as dist
        if "RANK" not in os.environ:
            sys.exit("--ddp needs torch.distributed.run (torchrun) to set RANK/WORLD_SIZE")
        dist.init_process_group(backend="gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch % world != 0:
        sys.exit(f"--batch {args.batch} is not divisible by world size {world}")
    local_batch = args.batch // world

    def rlog(msg):
        if rank == 0:
            log(msg)

    blas = detect_blas()
    rlog(f"torch {torch.__version__}  threads={torch.get_num_threads()} "
         f"interop={torch.get_num_interop_threads()}  blas={blas['blas']} ({blas['libblas']})  "
         f"mkldnn={torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled}")
    if blas["openblas_config"]:
        rlog(f"openblas: {blas['openblas_config']}")

    train_x, train_y = load_split(args.data, "train")
    n_train = train_x.shape[0]
    rlog(f"data {args.data}: train {tuple(train_x.shape)} uint8")

    torch.manual_seed(args.seed)  # same init on every rank (DDP also broadcasts)
    model = build_model(args.model)
    if args.init == "keras":
        keras_init(model)
    n_params = sum(p.numel() for p in model.parameters())
    if args.ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    rlog(f"model {args.model}: {n_params} params; global batch {args.batch}, "
         f"{world} rank(s) x {local_batch}")

    # Sampling: one shared permutation per epoch (same generator seed on every
    # rank); global batch k is perm[k*B:(k+1)*B], rank r takes its contiguous
    # slice [r*b:(r+1)*b]. Incomplete last batches are dropped.
    gen = torch.Generator().manual_seed(args.seed + 1)
    steps_per_epoch = n_train // args.batch
    if steps_per_epoch == 0:
        sys.exit(f"training set ({n_train}) smaller than global batch ({args.batch})")
    state = {"perm": None, "k": steps_per_epoch}

    def next_batch():
        if state["k"] >= steps_per_epoch:
            state["perm"] = torch.randperm(n_train, generator=gen)
            state["k"] = 0
        start = state["k"] * args.batch + rank * local_batch
        idx = state["perm"][start:start + local_batch]
        state["k"] += 1
        x = train_x[idx].float().div_(255.0)
        return x, train_y[idx]

    if args.bf16:
        torch.set_flush_denormal(True)

    def forward_loss(x, y):
        if args.bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
            return loss_fn(out.float(), y)
        return loss_fn(model(x), y)

    def step():
        x, y = next_batch()
        opt.zero_grad(set_to_none=True)
        loss = forward_loss(x, y)
        loss.backward()
        opt.step()
        return loss

    extra = {}
    if args.epochs is None:
        for _ in range(args.warmup):
            step()
        if args.ddp:
            dist.barrier()
        t0 = time.perf_counter()
        for i in range(args.steps):
            loss = step()
            if rank == 0 and (i + 1) % max(1, args.steps // 4) == 0:
                log(f"  step {i + 1}/{args.steps} loss {loss.item():.4f}")
        if args.ddp:
            dist.barrier()
        elapsed = time.perf_counter() - t0
        steps = args.steps
    else:
        steps = 0
        elapsed = 0.0
        for ep in range(args.epochs):
            if args.ddp:
                dist.barrier()
            t0 = time.perf_counter()
            total = torch.zeros(())
            for _ in range(steps_per_epoch):
                total += step().detach()
            if args.ddp:
                dist.barrier()
            dt = time.perf_counter() - t0
            elapsed += dt
            steps += steps_per_epoch
            rlog(f"epoch {ep + 1}/{args.epochs}: {dt:.1f}s, "
                 f"{steps_per_epoch * args.batch / dt:.0f} img/s, "
                 f"mean loss (rank 0 slice) {total.item() / steps_per_epoch:.4f}")
        # Evaluate on the test set (every rank holds identical weights).
        test_x, test_y = load_split(args.data, "t10k")
        net = model.module if args.ddp else model
        net.eval()
        correct = 0
        loss_sum = 0.0
        with torch.no_grad():
            for s in range(0, test_x.shape[0], 1000):
                x = test_x[s:s + 1000].float().div_(255.0)
                y = test_y[s:s + 1000]
                out = net(x)
                loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
        acc = correct / test_x.shape[0]
        rlog(f"test: accuracy {acc:.4f} loss {loss_sum / test_x.shape[0]:.4f} "
             f"({test_x.shape[0]} images)")
        extra = {"epochs": args.epochs, "test_accuracy": round(acc, 4),
                 "test_loss": round(loss_sum / test_x.shape[0], 4)}

    ips = steps * args.batch / elapsed
    rlog(f"{steps} steps in {elapsed:.2f}s: {ips:.1f} images/s, "
         f"{1000 * elapsed / steps:.2f} ms/step")
    if rank == 0:
        result = {"impl": "torch", "mode": "ddp" if args.ddp else "single",
                  "ranks": world, "threads": torch.get_num_threads(),
                  "batch": args.batch, "steps": steps,
                  "images_per_sec": round(ips, 2),
                  "sec_per_step": round(elapsed / steps, 6),
                  "blas": blas["blas"], "model": args.model,
                  "precision": "bf16-autocast" if args.bf16 else "fp32"}
        result.update(extra)
        print("RESULT " + json.dumps(result, separators=(",", ":")), flush=True)
    if args.ddp:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
