#!/usr/bin/python3
"""
Self-check of the pure-Python blkhash reference (blkhash_ref.py).

Usage:  check_reference.py [--images DIR] [--skip-large]

1. Generates the vector images with make_images.py (into a temporary
   directory, or into DIR if --images is given; make_images is idempotent
   and verifies every image's sha256 against tests/data/images.tsv).
2. Checks every row of tests/data/vectors.tsv (ground truth from the real
   blksum): image size and blkhash_ref.blkhash(image, algorithm, block_size).
3. xxh128 (our extension, absent from the vectors): for each image at 64K
   and 4K blocks, the reference root must equal `xxhsum -H2` of the outer
   hash input written by --leaves-file semantics (leaf0||...||LE64(size)),
   and for non-empty images of at most one block the single leaf must equal
   `xxhsum -H2` of the image itself.
4. Sanity: for sha256, hashlib over the outer input equals the root, and
   every supported digest yields a root of its default length.

Prints one line per failure and "N passed, M failed" at the end; exits
non-zero if anything failed. --skip-large skips the 1 GiB sparse image
(its vector rows are then counted as skipped, not passed).
"""

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
DATA = TOOLS.parent / "data"
sys.path.insert(0, str(TOOLS))
sys.dont_write_bytecode = True  # keep the source tree clean
import blkhash_ref  # noqa: E402
import make_images  # noqa: E402

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


def xxhsum_h2(path):
    """Canonical big-endian XXH128 hex of a file, via the xxhsum tool.
    Accepts both GNU style ("<hex>  <file>", possibly "XXH128_" / "XXH3_"
    prefixed) and BSD --tag style ("XXH128 (<file>) = <hex>")."""
    out = subprocess.run(["xxhsum", "-H2", str(path)], check=True,
                         capture_output=True, text=True).stdout
    line = out.splitlines()[0].strip()
    if " = " in line and line.startswith("XXH"):
        field = line.rsplit(" = ", 1)[1].strip()
    else:
        field = line.split()[0]
        field = re.sub(r"^(XXH128|XXH3_128|XXH3)[_:]", "", field)
    if not HEX32.match(field):
        raise RuntimeError("cannot parse xxhsum output: %r" % out)
    return field.lower()


def load_vectors():
    rows = []
    with open(DATA / "vectors.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header == ["name", "size", "algorithm", "block_size",
                          "digest"], header
        for line in f:
            if line.strip():
                name, size, alg, bs, digest = line.rstrip("\n").split("\t")
                rows.append((name, int(size), alg, int(bs), digest))
    return rows


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)


def run(images, skip_large, t):
    rows = load_vectors()
    # 2. ground-truth vectors
    for name, size, alg, bs, want in rows:
        if skip_large and name in make_images.LARGE:
            t.skipped += 1
            continue
        path = images / (name + ".raw")
        if not path.exists():
            t.check(False, "%s: image missing" % path)
            continue
        got_size = path.stat().st_size
        if got_size != size:
            t.check(False, "%s: size %d, vectors say %d" % (name, got_size, size))
            continue
        got = blkhash_ref.blkhash(path, alg, bs)
        t.check(got == want, "%s %s/%d: got %s want %s"
                % (name, alg, bs, got, want))

    names = sorted({r[0] for r in rows}
                   - (make_images.LARGE if skip_large else set()))
    with tempfile.TemporaryDirectory(prefix="blkhash-ref-") as tmp:
        leaves_file = Path(tmp) / "leaves.bin"
        for name in names:
            path = images / (name + ".raw")
            if not path.exists():
                continue  # already reported above
            # 3. xxh128 root vs xxhsum over the exact outer-hash input, via
            # the CLI so that --leaves-file is exercised too.
            for bs in (65536, 4096):
                out = subprocess.run(
                    [sys.executable, str(TOOLS / "blkhash_ref.py"),
                     "-d", "xxh128", "-b", str(bs),
                     "--leaves-file", str(leaves_file), str(path)],
                    check=True, capture_output=True, text=True).stdout
                root = out.split()[0]
                want = xxhsum_h2(leaves_file)
                t.check(root == want, "%s xxh128/%d: ref %s xxhsum %s"
                        % (name, bs, root, want))
                t.check(root == blkhash_ref.blkhash(path, "xxh128", bs),
                        "%s xxh128/%d: CLI and API disagree" % (name, bs))
            size = path.stat().st_size
            if 0 < size <= 65536:
                leaf = next(blkhash_ref.leaves(path, "xxh128", 65536)).hex()
                want = xxhsum_h2(path)
                t.check(leaf == want, "%s xxh128 leaf: ref %s xxhsum %s"
                        % (name, leaf, want))

        # 4. sanity: sha256 outer input hashed by hashlib == root
        for name in ("empty", "abc", "mixed-1m", "unaligned-data"):
            path = images / (name + ".raw")
            data = path.read_bytes()
            outer = blkhash_ref.outer_input(data)
            t.check(hashlib.sha256(outer).hexdigest()
                    == blkhash_ref.blkhash(path),
                    "%s: sha256(outer input) != root" % name)
        for d in blkhash_ref.DIGESTS:
            r = blkhash_ref.blkhash(b"abc", d)
            t.check(len(r) == 2 * blkhash_ref.digest_size(d)
                    and r == blkhash_ref.blkhash(images / "abc.raw", d),
                    "digest %s: bad length or bytes/file disagree" % d)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", metavar="DIR",
                    help="image directory (generated/verified there); "
                         "default: a temporary directory")
    ap.add_argument("--skip-large", action="store_true",
                    help="skip the 1 GiB sparse image")
    a = ap.parse_args(argv)

    gen_args = ["--skip-large"] if a.skip_large else []
    t = Tally()
    with tempfile.TemporaryDirectory(prefix="blkhash-imgs-") as tmp:
        images = Path(a.images) if a.images else Path(tmp)
        gen = subprocess.run(
            [sys.executable, str(TOOLS / "make_images.py")] + gen_args
            + [str(images)], capture_output=True, text=True)
        if gen.returncode != 0:
            sys.stderr.write(gen.stdout + gen.stderr)
            print("0 passed, 1 failed (make_images.py failed)")
            return 1
        run(images, a.skip_large, t)

    extra = ", %d skipped" % t.skipped if t.skipped else ""
    print("%d passed, %d failed%s" % (t.passed, t.failed, extra))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
