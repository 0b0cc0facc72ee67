#!/usr/bin/python3
"""Bit-identical to the real peer: the filter's checksum against
`nbdcopy --blkhash=DIGEST/SIZE` (libnbd 1.24 and later), over the same
bytes.  Every expected value comes from nbdcopy, never from the filter.

Images (generated here, deterministic): sizes 0, 1, 4097 and 65537 bytes
of data; 4097 written zeros (a short final block of zeros); a sparse
8 MiB + 1 image of holes only; and a 13 MiB + 4097 image mixing data,
a run of written zeros covering a whole aligned 4 MiB block, a hole and
a short final block.

For md5, sha1, sha256 and sha512:
- every block size from 4K to 4M (powers of two) on the mixed image,
  and 4K, 64K and 4M on the others;
- the read path: nbdkit -r --filter=blkhash file IMG, read by
  `nbdcopy "$uri" null:`;
- the write path: `nbdcopy --blkhash=D/S --blkhash-file=F IMG "$uri"`
  into nbdkit --filter=blkhash over the memory plugin or a file; the
  filter's report must equal F (nbdcopy's checksum of what it sent), F
  must equal nbdcopy's checksum of IMG read on its own, and the file
  written must equal IMG;
- unordered rewrites (what nbdcopy cannot checksum itself: it hashes
  only the copy it makes): three connections write the mixed image out
  of order, in unaligned pieces, some first with wrong bytes and later
  rewritten, all-zero pieces by write-zeroes, a write or not at all (the
  memory plugin starts as zeros); the filter's report must equal
  nbdcopy's checksum of the mixed image.

Without nbdcopy --blkhash (libnbd 1.14 on Debian 12, 1.22 on Debian 13)
the test is skipped, and says so.
"""

import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ENV, check, finish, nbdkit, parse_reports,  # noqa: E402
                     skip, tempdir)

KiB = 1 << 10
MiB = 1 << 20
DIGESTS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}  # hex length
ALL_SIZES = [4 * KiB << i for i in range(11)]                    # 4K .. 4M
FEW_SIZES = [4 * KiB, 64 * KiB, 4 * MiB]
HEX_RE = re.compile(r"^[0-9a-f]+$")


def size_label(n):
    return "%dM" % (n >> 20) if n % MiB == 0 else "%dK" % (n >> 10)


def peer_spec(digest, block_size):
    # nbdcopy's syntax: DIGEST/SIZE, SIZE with a k or M suffix.
    return "%s/%s" % (digest, size_label(block_size).replace("K", "k"))


def nbdcopy_version():
    p = subprocess.run(["nbdcopy", "--version"], capture_output=True,
                       text=True, env=ENV)
    return p.stdout.split("\n")[0].strip() or "nbdcopy (unknown version)"


def peer_has_blkhash(tmp):
    """True if this nbdcopy computes blkhash (known answer: the empty
    image, sha256/64K, as in README's definition)."""
    empty = os.path.join(tmp, "probe-empty.raw")
    open(empty, "wb").close()
    p = subprocess.run(["nbdcopy", "--blkhash=sha256/64k", "--", empty,
                        "null:"], capture_output=True, text=True, env=ENV)
    return p.returncode == 0 and p.stdout.strip() == (
        "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc")


# The images: name -> list of (kind, length), kind data | zero | hole.
MIXED = [("data", MiB + 123), ("zero", 7 * MiB - 118), ("data", MiB - 5),
         ("hole", 4 * MiB - 7), ("data", 4097 + 7)]
IMAGES = {
    "empty": [],
    "one": [("data", 1)],
    "4097": [("data", 4097)],
    "65537": [("data", 65537)],
    "zeros-4097": [("zero", 4097)],
    "holes-8M+1": [("hole", 8 * MiB + 1)],
    "mixed": MIXED,
}


def make_image(path, layout, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for kind, n in layout:
            if kind == "data":
                f.write(rng.randbytes(n))
            elif kind == "zero":
                f.write(bytes(n))
            else:
                f.seek(n, os.SEEK_CUR)
        f.truncate()
    return os.path.getsize(path)


def peer(img, digest, block_size, tmp):
    """nbdcopy's blkhash of IMG read from the file."""
    out = os.path.join(tmp, "peer-%s-%s-%d" % (os.path.basename(img), digest,
                                               block_size))
    p = subprocess.run(["nbdcopy", "--blkhash=" + peer_spec(digest, block_size),
                        "--blkhash-file=" + out, "--", img, "null:"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    if p.returncode != 0 or not os.path.exists(out):
        return None, p.stderr
    with open(out) as f:
        return f.read().strip(), p.stderr


def filter_args(digest, block_size):
    return ["blkhash-digest=" + digest,
            "blkhash-block-size=" + size_label(block_size)]


def one_report(p, what, size, digest, block_size):
    """The single report's digest, after checking the run and the label."""
    if not check(p.returncode == 0, what + ": nbdkit exit status",
                 p.stderr[-2000:]):
        return None
    reports = parse_reports(p.stderr)
    if not check(len(reports) == 1, what + ": exactly one report",
                 p.stderr[-2000:]):
        return None
    r = reports[0]
    check(r["label"] == "%s/%s" % (digest, size_label(block_size)),
          what + ": label", r["line"])
    check(r.get("size") == str(size), what + ": size=", r["line"])
    return r["digest"]


def read_path(img, size, digest, block_size):
    p = nbdkit(["file", img], filter_args(digest, block_size), extra=["-r"],
               run='nbdcopy "$uri" null:', timeout=300)
    return p, one_report(p, "read", size, digest, block_size)


def write_path(img, size, digest, block_size, tmp, i):
    """nbdcopy IMG into the filter, over memory or a file (alternately);
    nbdcopy's own --blkhash of the bytes it sent goes to a file."""
    sent = os.path.join(tmp, "sent-%d" % i)
    out = os.path.join(tmp, "out-%d.raw" % i)
    copy = ("nbdcopy --blkhash=%s --blkhash-file=%s --connections=4 "
            "--requests=16 --request-size=%d %s \"$uri\"" % (
                peer_spec(digest, block_size), sent, [65536, 262144][i % 2],
                img))
    if i % 2:
        with open(out, "wb") as f:
            f.truncate(size)
        plugin = ["file", out]
    else:
        plugin = ["memory", "size=%d" % size]
    p = nbdkit(plugin, filter_args(digest, block_size), run=copy, timeout=300)
    got = one_report(p, "write", size, digest, block_size)
    sent_hex = None
    if os.path.exists(sent):
        with open(sent) as f:
            sent_hex = f.read().strip()
    same_bytes = None
    if i % 2:
        same_bytes = subprocess.run(["cmp", "-s", img, out]).returncode == 0
        os.unlink(out)
    return p, got, sent_hex, same_bytes


# Unordered rewrites through three connections (run by nbdsh's Python).
REWRITER = r'''
import random, sys
import nbd

sock, img, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
data = open(img, "rb").read()
size = len(data)
handles = []
for _ in range(3):
    h = nbd.NBD()
    h.connect_unix(sock)
    handles.append(h)

# Unaligned pieces covering the image, written in random order.
pieces, off = [], 0
while off < size:
    n = min(size - off, rng.choice([1, 511, 4095, 4097, 65536, 100000, 300000]))
    pieces.append((off, n, True))
    off += n
rng.shuffle(pieces)
# A third of them are first written with wrong bytes, somewhere before
# their right bytes.
for o, n, _ in rng.sample(pieces, len(pieces) // 3):
    pos = rng.randrange(pieces.index((o, n, True)) + 1)
    pieces.insert(pos, (o, n, False))
dirty = set()
for o, n, right in pieces:
    h = rng.choice(handles)
    chunk = data[o:o + n] if right else rng.randbytes(n)
    if not right:
        dirty.add(o)
    if right and chunk.count(0) == n:
        # Zeros: write-zeroes, a plain write, or nothing if nothing was
        # written there (the memory plugin's export starts as zeros).
        how = rng.choice(["zero", "write", "skip"])
        if how == "skip" and o in dirty:
            how = "zero"
        if how == "zero":
            h.zero(n, o)
        elif how == "write":
            h.pwrite(chunk, o)
    else:
        h.pwrite(chunk, o)
for h in handles:
    h.flush()
    h.shutdown()
'''


def rewrite_path(img, size, digest, block_size, tmp, seed):
    script = os.path.join(tmp, "rewriter.py")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(REWRITER)
    run = "/usr/bin/python3 %s \"$unixsocket\" %s %d" % (script, img, seed)
    p = nbdkit(["memory", "size=%d" % size], filter_args(digest, block_size),
               run=run, timeout=300)
    return p, one_report(p, "rewrite", size, digest, block_size)


def main():
    with tempdir() as tmp:
        version = nbdcopy_version()
        if not peer_has_blkhash(tmp):
            skip("%s has no --blkhash (libnbd 1.24 and later have it): the "
                 "filter is not compared with the real peer here" % version)
        print("peer: " + version, flush=True)

        images = {}
        for seed, (name, layout) in enumerate(IMAGES.items()):
            path = os.path.join(tmp, name + ".raw")
            images[name] = (path, make_image(path, layout, seed + 1))
        check(images["mixed"][1] == 13 * MiB + 4097, "mixed image size",
              images["mixed"][1])

        cases = []
        for name in IMAGES:
            for digest in DIGESTS:
                sizes = ALL_SIZES if name == "mixed" else FEW_SIZES
                for block_size in sizes:
                    cases.append((name, digest, block_size))

        # The peer's values first, two at a time.
        with ThreadPoolExecutor(max_workers=2) as pool:
            expected = dict(zip(cases, pool.map(
                lambda c: peer(images[c[0]][0], c[1], c[2], tmp), cases)))
        for (name, digest, block_size), (hex_, err) in expected.items():
            check(hex_ is not None and len(hex_) == DIGESTS[digest]
                  and HEX_RE.match(hex_),
                  "nbdcopy --blkhash=%s %s" % (peer_spec(digest, block_size),
                                               name), "%r %s" % (hex_, err))

        def run_case(i, case):
            name, digest, block_size = case
            img, size = images[name]
            return (read_path(img, size, digest, block_size),
                    write_path(img, size, digest, block_size, tmp, i))

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(run_case, range(len(cases)), cases))
        for case, ((_, got_read), (_, got_write, sent, same)) in zip(cases,
                                                                      results):
            name, digest, block_size = case
            want = expected[case][0]
            what = "%s %s" % (name, peer_spec(digest, block_size))
            check(want is not None and got_read == want,
                  what + ": read path == nbdcopy --blkhash",
                  "filter %s, nbdcopy %s" % (got_read, want))
            check(want is not None and got_write == want,
                  what + ": write path == nbdcopy --blkhash of the source",
                  "filter %s, nbdcopy %s" % (got_write, want))
            check(sent == want,
                  what + ": nbdcopy's --blkhash of what it sent == of the source",
                  "sent %s, source %s" % (sent, want))
            if same is not None:
                check(same, what + ": the file written equals the source")

        rewrites = [(d, bs) for d in DIGESTS for bs in (4 * KiB, 64 * KiB, MiB)]
        img, size = images["mixed"]
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(
                lambda c: rewrite_path(img, size, c[1][0], c[1][1], tmp, c[0]),
                enumerate(rewrites)))
        for (digest, block_size), (_, got) in zip(rewrites, results):
            want = expected[("mixed", digest, block_size)][0]
            check(want is not None and got == want,
                  "unordered rewrites of mixed %s: filter == nbdcopy --blkhash"
                  % peer_spec(digest, block_size),
                  "filter %s, nbdcopy %s" % (got, want))
        print("%d cases (read and write), %d rewrite runs, against %s" % (
            len(cases), len(rewrites), version), flush=True)
    finish()


if __name__ == "__main__":
    main()
