#!/usr/bin/env python3
"""Writes tests/fuzz/regressions/checkpoint/*: damaged checkpoints that the
reader must refuse with a message (checkpoint_replay_test feeds them to the
fuzz entry point; checkpoint_test checks each one's message). Each file is a
fuzz input: a mode byte 0 ("the rest is a file") and the file's bytes. The
Protobuf payloads are encoded by hand here, independently of the C++ code.
Run once: python3 tests/fuzz/make_checkpoint_regressions.py"""
import hashlib
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions", "checkpoint")
MAGIC = b"DPCNNCK1"


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def vint(num, n):
    return field(num, 0, varint(n))


def ld(num, b):
    return field(num, 2, varint(len(b)) + b)


def tensor(name, shape, data):
    packed_shape = b"".join(varint(d) for d in shape)
    packed_data = b"".join(struct.pack("<f", x) for x in data)
    return ld(1, name) + ld(2, packed_shape) + ld(3, packed_data)


def frame(payload, length=None):
    n = len(payload) if length is None else length
    return MAGIC + struct.pack("<Q", n) + payload + hashlib.sha256(payload).digest()


SPEC = b"input 1x28x28 classes 10\n0 flatten\n1 dense units=10 activation=none use_bias=true\n"
good = (vint(1, 1) + ld(2, SPEC) + ld(5, vint(1, 1) + vint(3, 3)) +
        ld(8, tensor(b"layers.1.dense.bias", [2], [0.0, 1.0])))

cases = {
    "empty-file": b"",
    "magic-only-half": MAGIC[:5],
    "wrong-magic": b"DPCNNCK2" + frame(good)[8:],
    "header-cut": MAGIC + b"\x10\x00\x00",
    "payload-cut": frame(good)[:-40],
    "length-claims-2-to-63": frame(good, length=1 << 63),
    "length-claims-less": frame(good, length=len(good) - 5),
    "checksum-flipped": frame(good)[:-1] + bytes([frame(good)[-1] ^ 1]),
    "payload-bit-flipped": (lambda f: f[:20] + bytes([f[20] ^ 0x40]) + f[21:])(frame(good)),
    "payload-not-protobuf": frame(b"\xff" * 40),
    "format-version-2": frame(vint(1, 2) + ld(2, SPEC)),
    "shape-overflows": frame(vint(1, 1) + ld(8, tensor(b"w", [1 << 40, 1 << 40], [1.0]))),
    "shape-negative": frame(vint(1, 1) + ld(8, tensor(b"w", [-3], [1.0]))),
    "shape-disagrees-with-data": frame(vint(1, 1) + ld(8, tensor(b"w", [2, 3], [1.0] * 5))),
    "negative-global-step": frame(vint(1, 1) + ld(5, vint(3, -7))),
}
os.makedirs(OUT, exist_ok=True)
for name, data in cases.items():
    with open(os.path.join(OUT, name + ".ckpt"), "wb") as f:
        f.write(b"\x00" + data)
print(len(cases), "files in", OUT)
