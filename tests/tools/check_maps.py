#!/usr/bin/python3
"""
Block maps: the C++ engine (blkhash-tool map / check / diff) against the
independent Python writer and reader in blkhash_ref.py (hashlib only).

For generated files (empty, one byte, a short final block of zeros, zero
blocks among data, a sparse file) and several digests and block sizes:
  1. the Python map and the tool's map are the same bytes (both are
     canonical, common/block_map.h), and their root is blkhash_ref's;
  2. the Python reader accepts the tool's map, and every leaf in it is the
     hashlib leaf of that block of the file;
  3. one byte changed in a copy: `diff` exits 1 and names exactly the
     block holding it;
  4. a forged map (right format, one leaf changed, root recomputed) is
     accepted alone but refused by both readers when the true root is
     given; a map with a leaf changed and the old root is refused always;
  5. a 1 TiB sparse file gives a map of under 100 bytes whose root the
     Python reader recomputes and equals H(zero leaf x 2^24 || LE64(2^40)).
Prints one "FAIL: ..." per failure and "N passed, M failed"; exit 1 if any
failed.
"""

import argparse
import hashlib
import os
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
sys.dont_write_bytecode = True
import blkhash_ref  # noqa: E402

TIMEOUT = 120
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what)


def run(tool, *args):
    return subprocess.run([tool] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=TIMEOUT)


def inputs(rng):
    bs = 65536
    yield "empty", b""
    yield "one-byte", b"\x07"
    yield "short-zero-tail", rng.randbytes(3 * bs) + bytes(1000)
    mixed = bytearray()
    for i in range(16):
        mixed += bytes(bs) if i % 3 == 1 else rng.randbytes(bs)
    yield "mixed", bytes(mixed) + rng.randbytes(4097)
    yield "all-zero", bytes(5 * bs + 17)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tool", required=True)
    a = p.parse_args()
    rng = random.Random(0xB1A9)
    digests = [d for d in ("sha256", "sha1", "xxh128")
               if d in blkhash_ref.DIGESTS]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, data in inputs(rng):
            src = tmp / (name + ".raw")
            src.write_bytes(data)
            for digest in digests:
                for bs in (4096, 65536):
                    what = "%s %s/%d" % (name, digest, bs)
                    py_map, c_map = tmp / "py.map", tmp / "c.map"
                    root = blkhash_ref.write_map(src, py_map, digest, bs)
                    check(root == blkhash_ref.blkhash(src, digest, bs),
                          what + ": python map root is not blkhash_ref's")
                    r = run(a.tool, "--digest", digest, "--block-size", bs,
                            "map", src, c_map)
                    check(r.returncode == 0 and r.stdout == root + "\n",
                          what + ": tool map: %r %r" % (r.stdout, r.stderr))
                    check(py_map.read_bytes() == c_map.read_bytes(),
                          what + ": python and tool maps differ")
                    r = run(a.tool, "check", py_map, root)
                    check(r.returncode == 0 and r.stdout == root + "\n",
                          what + ": tool refuses the python map: " + r.stderr)
                    m = blkhash_ref.read_map(c_map, root)
                    check(list(m.iter_leaves()) ==
                          list(blkhash_ref.leaves(src, digest, bs)),
                          what + ": the tool map's leaves are not hashlib's")
                    if len(data) < 2:
                        continue
                    # One byte changed: diff names its block exactly.
                    offset = rng.randrange(len(data))
                    bad = bytearray(data)
                    bad[offset] ^= 0x5A
                    bad_src = tmp / "bad.raw"
                    bad_src.write_bytes(bytes(bad))
                    bad_map = tmp / "bad.map"
                    blkhash_ref.write_map(bad_src, bad_map, digest, bs)
                    r = run(a.tool, "diff", c_map, bad_map)
                    block = offset // bs
                    check(r.returncode == 1 and
                          r.stdout.startswith("blocks %d\n" % block) and
                          "1 ranges, 1 blocks differ" in r.stdout,
                          what + ": diff of byte %d: %r" % (offset, r.stdout))
                    # Forged: one wrong leaf, root recomputed.
                    forged = tmp / "forged.map"
                    blkhash_ref.write_map(
                        src, forged, digest, bs,
                        forge=lambda b, leaf: bytes(len(leaf)) if b == 1
                        else leaf)
                    r = run(a.tool, "check", forged)
                    check(r.returncode == 0,
                          what + ": forged map not self-consistent")
                    r = run(a.tool, "check", forged, root)
                    check(r.returncode == 1 and "expected" in r.stderr,
                          what + ": forged map accepted with the root: "
                          + r.stdout + r.stderr)
                
                    # Tampered: a leaf byte changed in place, old root (a
                    # map ending in a zero run gets its root changed).
                    raw = bytearray(c_map.read_bytes())
                    if m.runs[-1][0] == b"D":
                        raw[-1] ^= 1
                    else:
                        raw[8 + 18 + len(digest)] ^= 1
                    tampered = tmp / "tampered.map"
                    tampered.write_bytes(bytes(raw))
                    r = run(a.tool, "check", tampered)
                    check(r.returncode == 1 and "recompute" in r.stderr,
                          what + ": tampered map accepted: " + r.stderr)
                    try:
                        blkhash_ref.read_map(tampered)
                        check(False, what + ": python read a tampered map")
                    except blkhash_ref.MapError:
                        check(True, "")
        # 1 TiB of holes.
        sparse = tmp / "sparse.raw"
        with open(sparse, "wb") as f:
            f.truncate(1 << 40)
        sparse_map = tmp / "sparse.map"
        r = run(a.tool, "map", sparse, sparse_map)
        zero_leaf = hashlib.sha256(bytes(65536)).digest()
        outer = hashlib.sha256()
        chunk = zero_leaf * 65536
        for _ in range((1 << 24) // 65536):
            outer.update(chunk)
        outer.update(struct.pack("<Q", 1 << 40))
        expected = outer.hexdigest()
        check(r.returncode == 0 and r.stdout == expected + "\n",
              "1 TiB sparse: tool root %r %r" % (r.stdout, r.stderr))
        size = sparse_map.stat().st_size
        print("1 TiB sparse map: %d bytes" % size)
        check(size < 100, "1 TiB sparse map is %d bytes" % size)
        m = blkhash_ref.read_map(sparse_map, expected)
        check(m.runs == [(b"Z", 0, 1 << 24, None)],
              "1 TiB sparse map runs: %r" % (m.runs,))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
