#!/usr/bin/python3
"""
Generate the blkhash test-vector images into OUTDIR, and verify them.

Usage:  make_images.py [--skip-large] OUTDIR

Writes <name>.raw for every image listed in tests/data/images.tsv. Image
contents follow the published definitions of the blkhash vectors:

  PRNG(label, off, n) = S(label)[off : off+n], where
  S(label) = SHA256("blkhash-vectors/" + label + "/" + LE64(0))
          || SHA256("blkhash-vectors/" + label + "/" + LE64(1)) || ...

label is the image name, or "<name>@<offset>" for data written into a
sparse image at that offset. Holes are made with truncate() (sparse);
explicit zero regions are real written zeros.

Invariants: after a run, every generated image has exactly the size and
plain sha256 listed in tests/data/images.tsv; otherwise the script exits
non-zero naming the bad image. Idempotent: an image already present and
recorded in OUTDIR/.make_images.stamp with the same size and mtime (or
found to hash correctly) is not rewritten or rehashed.
"""

import argparse
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
BLOCK = 64 * KiB  # blkhash default block size, used by the layouts below

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
IMAGES_TSV = DATA_DIR / "images.tsv"
STAMP = ".make_images.stamp"
LARGE = {"sparse-1g"}


def prng(label, off, n):
    """Bytes [off, off+n) of the SHA-256 counter-mode stream for label."""
    prefix = b"blkhash-vectors/" + label.encode("ascii") + b"/"
    first = off // 32
    last = (off + n + 31) // 32  # exclusive chunk index
    stream = b"".join(hashlib.sha256(prefix + struct.pack("<Q", k)).digest()
                      for k in range(first, last))
    start = off - first * 32
    return stream[start:start + n]


def mixed_blocks(name, pattern):
    """One 64 KiB block per letter: D = PRNG(name, i*B, B), Z = zeros,
    L = zeros with last byte 0x01, F = zeros with first byte 0x01."""
    parts = []
    for i, c in enumerate(pattern):
        if c == "D":
            parts.append(prng(name, i * BLOCK, BLOCK))
        elif c == "Z":
            parts.append(bytes(BLOCK))
        elif c == "L":
            parts.append(bytes(BLOCK - 1) + b"\x01")
        elif c == "F":
            parts.append(b"\x01" + bytes(BLOCK - 1))
        else:
            raise AssertionError("bad pattern letter %r" % c)
    return b"".join(parts)


# Image table: name -> ("data", bytes-producing function)
#                   or ("sparse", size, [(offset, length-or-literal-bytes)])
# In sparse writes an int length means PRNG("<name>@<offset>", 0, length).
def _p(name, n):
    return lambda: prng(name, 0, n)


IMAGES = {
    "empty": ("data", lambda: b""),
    "one-byte": ("data", lambda: b"a"),
    "one-byte-zero": ("data", lambda: b"\x00"),
    "abc": ("data", lambda: b"abc"),
    "prng-511": ("data", _p("prng-511", 511)),
    "prng-4k": ("data", _p("prng-4k", 4 * KiB)),
    "block-data": ("data", _p("block-data", BLOCK)),
    "block-zero": ("data", lambda: bytes(BLOCK)),
    "block-minus-1": ("data", _p("block-minus-1", BLOCK - 1)),
    "block-plus-1": ("data", _p("block-plus-1", BLOCK + 1)),
    "two-blocks-A-B": ("data", lambda: b"A" * BLOCK + b"B" * BLOCK),
    "zero-1m": ("data", lambda: bytes(MiB)),
    "zero-1m-sparse": ("sparse", MiB, []),
    "random-1m": ("data", _p("random-1m", MiB)),
    "mixed-1m": ("data", lambda: mixed_blocks("mixed-1m", "DZLZFDZZDDZZZZLD")),
    "unaligned-data": ("data", _p("unaligned-data", MiB + 12345)),
    "unaligned-zero-tail": (
        "data", lambda: prng("unaligned-zero-tail", 0, 3 * BLOCK) + bytes(1000)),
    "unaligned-512": ("data", _p("unaligned-512", 5 * BLOCK + 512)),
    "sparse-5m-unaligned": ("sparse", 5 * MiB + 100, [(MiB, 4 * KiB)]),
    "sparse-1g": ("sparse", GiB, [
        (0, 4 * KiB),
        (100 * MiB, BLOCK),
        (512 * MiB + 32 * KiB, MiB),
        (GiB - 1, b"\xff"),
    ]),
}


def load_expected():
    """images.tsv -> {name: (size, sha256hex)}."""
    out = {}
    with open(IMAGES_TSV) as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header[:3] == ["name", "size", "plain_sha256_of_file"], header
        for line in f:
            if line.strip():
                name, size, sha = line.rstrip("\n").split("\t")[:3]
                out[name] = (int(size), sha)
    return out


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            buf = f.read(4 * MiB)
            if not buf:
                return h.hexdigest()
            h.update(buf)


def write_image(path, spec):
    """Write one image to path (via a temporary name, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    name = path.name[:-len(".raw")]
    with open(tmp, "wb") as f:
        if spec[0] == "data":
            f.write(spec[1]())
        else:
            _, size, writes = spec
            f.truncate(size)  # the whole file starts as a hole
            for off, what in writes:
                data = what if isinstance(what, bytes) else \
                    prng("%s@%d" % (name, off), 0, what)
                f.seek(off)
                f.write(data)
    os.replace(tmp, path)


def stat_key(path):
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-large", action="store_true",
                    help="do not generate the 1 GiB sparse image")
    ap.add_argument("outdir")
    a = ap.parse_args(argv)

    expected = load_expected()
    if set(expected) != set(IMAGES):
        sys.exit("make_images: image list differs from %s: %s" % (
            IMAGES_TSV, sorted(set(expected) ^ set(IMAGES))))

    outdir = Path(a.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stamp_path = outdir / STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = {}
    new_stamp = {}
    bad = []

    for name, spec in IMAGES.items():
        if a.skip_large and name in LARGE:
            continue
        size, sha = expected[name]
        path = outdir / (name + ".raw")
        rec = stamp.get(name)
        if path.exists() and rec and rec[:2] == stat_key(path) and rec[2] == sha:
            new_stamp[name] = rec  # verified earlier, unchanged since
            print("%-22s ok (cached)" % name)
            continue
        if not (path.exists() and path.stat().st_size == size
                and file_sha256(path) == sha):
            write_image(path, spec)
            got_size = path.stat().st_size
            got_sha = file_sha256(path)
            if got_size != size or got_sha != sha:
                bad.append(name)
                print("%-22s MISMATCH: size %d sha256 %s, expected size %d "
                      "sha256 %s" % (name, got_size, got_sha, size, sha),
                      file=sys.stderr)
                continue
            print("%-22s written, verified" % name)
        else:
            print("%-22s ok (verified existing)" % name)
        new_stamp[name] = stat_key(path) + [sha]

    stamp_path.write_text(json.dumps(new_stamp, indent=1, sort_keys=True))
    if bad:
        sys.exit("make_images: sha256 mismatch for: %s" % ", ".join(bad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
