#!/usr/bin/python3
"""
Block maps: the C++ engine, through blkhash-map (tool/blkhash_map.cc:
make / check / diff), against the independent Python writer and reader
in blkhash_ref.py (hashlib only).

For generated files (empty, one byte, a short final block of zeros, zero
blocks among data, a sparse file) and several digests and block sizes:
  1. the Python map and the tool's map are the same bytes (both are
     canonical, common/block_map.h), and their root is blkhash_ref's;
  2. the Python reader accepts the tool's map, and every leaf in it is the
     hashlib leaf of that block of the file;
  3. one byte changed in a copy: `diff` and `check MAP FILE` exit 1 and
     name exactly the block holding it, and `check MAP FILE` of the
     unchanged file exits 0;
  4. a forged map (right format, one leaf changed, root recomputed) is
     accepted alone but refused by both readers when the true root is
     given; a map with a leaf changed and the old root is refused always;
  5. a 1 TiB sparse file gives a map of under 100 bytes whose root the
     Python reader recomputes and equals H(zero leaf x 2^24 || LE64(2^40)),
     and `check MAP FILE` of it passes;
  6. the command line: every usage or parameter error exits 2 with one
     line on stderr, so do unreadable files and maps of different block
     sizes; sizes that differ exit 1; --max-ranges cuts the list.
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


def command_line(tool, tmp, rng):
    """Exit statuses and messages of blkhash-map's command line."""
    data = bytearray(rng.randbytes(8 * 4096))
    src = tmp / "cli.raw"
    src.write_bytes(bytes(data))
    good = tmp / "cli.map"
    r = run(tool, "make", "--block-size=4K", src, good)
    check(r.returncode == 0, "make --block-size=4K: " + r.stderr)
    for b in (1, 3, 4, 6):
        data[b * 4096 + 7] ^= 1
    bad = tmp / "cli-bad.raw"
    bad.write_bytes(bytes(data))
    r = run(tool, "check", "--max-ranges", 1, good, bad)
    check(r.returncode == 1 and r.stdout ==
          "blocks 1,... (3 ranges)\n4 blocks differ, in 3 ranges\n",
          "--max-ranges 1: %r" % r.stdout)
    r = run(tool, "check", good, bad, "--max-ranges=2")
    check(r.returncode == 1 and r.stdout.startswith("blocks 1,3-4,... "),
          "--max-ranges=2 after the operands: %r" % r.stdout)
    other = tmp / "cli-64k.map"
    run(tool, "make", src, other)
    short = tmp / "cli-short.raw"
    short.write_bytes(bytes(data[:-1]))
    short_map = tmp / "cli-short.map"
    run(tool, "make", "--block-size", "4096", short, short_map)
    # (arguments, exit status, text the one line of stderr holds)
    cases = [
        ([], 2, "no command"),
        (["frob"], 2, "unknown command frob"),
        (["make", src], 2, "make needs FILE and MAP"),
        (["make", "--block-size", "3K", src, tmp / "x.map"], 2,
         "not a power of two"),
        (["make", "--block-size", "big", src, tmp / "x.map"], 2,
         "not a size"),
        (["make", "--digest", "nosuch", src, tmp / "x.map"], 2,
         'unknown digest "nosuch"'),
        (["make", "--digest"], 2, "--digest needs a value"),
        (["make", "--expect", "00", src, tmp / "x.map"], 2,
         "make: unknown option --expect"),
        (["make", tmp / "none.raw", tmp / "x.map"], 2, "cannot open"),
        (["make", src, tmp / "no" / "x.map"], 2, "cannot write"),
        (["check"], 2, "check needs MAP"),
        (["check", "--expect", "xyz", good], 2, "not a hexadecimal digest"),
        (["check", "--expect", "00", good], 1, "is not the expected 00"),
        (["check", tmp / "none.map"], 2, "cannot open"),
        (["check", src], 1, "not a block map"),
        (["check", good, tmp / "none.raw"], 2, "cannot open"),
        (["check", good, short], 1, "is 32767 bytes, the map's image 32768"),
        (["check", "--max-ranges", "0", good, src], 2, "not a number"),
        (["diff", good], 2, "diff needs MAP1 and MAP2"),
        (["diff", "--block-size", "4K", good, good], 2, "unknown option"),
        (["diff", good, other], 2, "cannot be compared"),
        (["diff", good, short_map], 1, "differ in size"),
    ]
    for args, status, text in cases:
        r = run(tool, *args)
        lines = r.stderr.splitlines()
        check(r.returncode == status and len(lines) == 1 and
              text in lines[0] and lines[0].startswith("blkhash-map: ")
              and r.stdout == "",
              "blkhash-map %s: exit %d, stderr %r (want %d, %r)" %
              (" ".join(str(x) for x in args), r.returncode, r.stderr,
               status, text))
    x = tmp / "x.map"
    check(not x.exists() and not list(tmp.glob("x.map.*")),
          "a failed make left a map or a temporary file")
    r = run(tool, "--help")
    check(r.returncode == 0 and r.stdout.startswith("usage: blkhash-map"),
          "--help")
    r = run(tool, "--version")
    check(r.returncode == 0 and r.stdout.startswith("blkhash-map "),
          "--version: %r" % r.stdout)


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
                    r = run(a.tool, "make", "--digest", digest,
                            "--block-size", bs, src, c_map)
                    check(r.returncode == 0 and r.stdout == root + "\n",
                          what + ": tool map: %r %r" % (r.stdout, r.stderr))
                    check(py_map.read_bytes() == c_map.read_bytes(),
                          what + ": python and tool maps differ")
                    r = run(a.tool, "check", "--expect", root, py_map)
                    check(r.returncode == 0 and r.stdout == root + "\n",
                          what + ": tool refuses the python map: " + r.stderr)
                    r = run(a.tool, "check", c_map, src)
                    check(r.returncode == 0 and r.stdout == root + "\n",
                          what + ": check MAP FILE of the same file: %r %r"
                          % (r.stdout, r.stderr))
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
                    block = offset // bs
                    want = "blocks %d\n1 block differs, in 1 range\n" % block
                    r = run(a.tool, "diff", c_map, bad_map)
                    check(r.returncode == 1 and r.stdout == want,
                          what + ": diff of byte %d: %r" % (offset, r.stdout))
                    r = run(a.tool, "check", c_map, bad_src)
                    check(r.returncode == 1 and r.stdout == want,
                          what + ": check of byte %d: %r %r" %
                          (offset, r.stdout, r.stderr))
                    # Forged: one wrong leaf, root recomputed.
                    forged = tmp / "forged.map"
                    blkhash_ref.write_map(
                        src, forged, digest, bs,
                        forge=lambda b, leaf: bytes(len(leaf)) if b == 1
                        else leaf)
                    r = run(a.tool, "check", forged)
                    check(r.returncode == 0,
                          what + ": forged map not self-consistent")
                    r = run(a.tool, "check", "--expect", root, forged)
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
        r = run(a.tool, "make", sparse, sparse_map)
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
        r = run(a.tool, "check", sparse_map, sparse)
        check(r.returncode == 0 and r.stdout == expected + "\n",
              "1 TiB sparse: check MAP FILE: %r %r" % (r.stdout, r.stderr))
        command_line(a.tool, tmp, rng)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
