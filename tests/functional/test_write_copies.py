#!/usr/bin/python3
"""Write side: real copy tools write an image into an nbdkit target through
the filter, and the reported checksum must equal the independent reference
(hashlib) over the source's raw bytes; for a file target also over the
target file's bytes after the run.

Sources: a raw image (64 MiB + 1536 bytes, so the last 64K block is short)
with random data at unaligned offsets, an allocated run of zeros and holes,
and a qcow2 converted from it.  Copiers: nbdcopy (default: several
connections, unordered requests), qemu-img convert -n, and qemu-img convert
-n -W (out-of-order writes).  Targets: the memory plugin and the file plugin
over a pre-created sparse file.  Digests: sha256/64K (default), xxh128,
sha256/4K and blake2b512/1M.

Also nbdcopy of the vector images mixed-1m and sparse-5m-unaligned into
memory must give the vectors.tsv digests (computed by the real blksum).
"""

import os
import random
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, vectors, image, nbdkit,  # noqa: E402
                     parse_reports, reference, tempdir, ENV)

MIB = 1 << 20
VIRTUAL_SIZE = 64 * MIB + 1536

# (offset, length, kind): random data at unaligned places, one allocated run
# of zeros, and data up to the very last byte.
EXTENTS = [
    (12345, MIB + 777, "random"),
    (7 * MIB + 4095, 3000, "random"),
    (20 * MIB - 1, 2 * MIB + 2, "random"),
    (33 * MIB + 65536 - 100, 200, "random"),     # straddles a 64K boundary
    (40 * MIB, MIB, "zeros"),                    # allocated, but zero
    (48 * MIB + 4096 * 3 + 1, 65536 * 5, "random"),
    (VIRTUAL_SIZE - 70000, 70000, "random"),     # to the end, short block
]

# (filter parameters, digest name, block size) for the reference.
CONFIGS = [
    ([], "sha256", 65536),
    (["blkhash-digest=xxh128"], "xxh128", 65536),
    (["blkhash-block-size=4K"], "sha256", 4096),
    (["blkhash-digest=blake2b512", "blkhash-block-size=1M"], "blake2b512",
     MIB),
]


def make_sources(tmp):
    raw = os.path.join(tmp, "source.raw")
    rng = random.Random(20240601)
    with open(raw, "wb") as f:
        f.truncate(VIRTUAL_SIZE)
        for offset, length, kind in EXTENTS:
            f.seek(offset)
            f.write(rng.randbytes(length) if kind == "random"
                    else bytes(length))
    qcow2 = os.path.join(tmp, "source.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                    raw, qcow2], check=True, env=ENV)
    return raw, qcow2


def copy_command(copier, fmt, src):
    q = shlex.quote(src)
    if copier == "nbdcopy":
        if fmt == "raw":
            return 'nbdcopy %s "$uri"' % q
        return 'nbdcopy -- [ qemu-nbd -r -f qcow2 %s ] "$uri"' % q
    if copier == "qemu-img":
        return 'qemu-img convert -n -f %s -O raw %s "$uri"' % (fmt, q)
    if copier == "qemu-img-W":
        return 'qemu-img convert -n -W -f %s -O raw %s "$uri"' % (fmt, q)
    raise ValueError(copier)


def check_run(what, p, expected, result_file):
    if not check(p.returncode == 0, what + ": exit status",
                 p.stderr[-3000:]):
        return None
    reports = parse_reports(p.stderr)
    if not check(len(reports) >= 1, what + ": a report", p.stderr[-3000:]):
        return None
    last = reports[-1]
    check(last["digest"] == expected, what + ": report == reference",
          "%s != %s" % (last["line"], expected))
    check(all(r["digest"] == expected for r in reports),
          what + ": every report == reference", p.stderr[-3000:])
    with open(result_file) as f:
        check(f.read() == expected + "\n", what + ": result file")
    return last


def main():
    with tempdir() as tmp:
        raw, qcow2 = make_sources(tmp)
        with open(raw, "rb") as f:
            source_bytes = f.read()
        check(len(source_bytes) == VIRTUAL_SIZE, "source size")
        info = subprocess.run(["qemu-img", "info", "--output=json", qcow2],
                              capture_output=True, text=True, env=ENV)
        check('"virtual-size": %d' % VIRTUAL_SIZE in info.stdout,
              "qcow2 virtual size", info.stdout)

        expected = {}
        for _, digest, bs in CONFIGS:
            expected[(digest, bs)] = reference(source_bytes, digest, bs)
        # Sanity: the data really changes the value.
        check(expected[("sha256", 65536)]
              != reference(bytes(VIRTUAL_SIZE), "sha256", 65536),
              "source is not all zeros")

        result = os.path.join(tmp, "result")
        n = 0
        for fmt, src in (("raw", raw), ("qcow2", qcow2)):
            for copier in ("nbdcopy", "qemu-img", "qemu-img-W"):
                for target in ("memory", "file"):
                    for params, digest, bs in CONFIGS:
                        n += 1
                        what = "%s %s -> %s %s/%d" % (copier, fmt, target,
                                                      digest, bs)
                        want = expected[(digest, bs)]
                        if os.path.exists(result):
                            os.unlink(result)
                        if target == "memory":
                            plugin = ["memory", "size=%d" % VIRTUAL_SIZE]
                        else:
                            dest = os.path.join(tmp, "target.img")
                            if os.path.exists(dest):
                                os.unlink(dest)
                            with open(dest, "wb") as f:
                                f.truncate(VIRTUAL_SIZE)
                            plugin = ["file", dest]
                        p = nbdkit(plugin,
                                   params + ["blkhash-file=" + result],
                                   run=copy_command(copier, fmt, src))
                        last = check_run(what, p, want, result)
                        if last is not None:
                            check(last.get("size") == str(VIRTUAL_SIZE),
                                  what + ": size=", last["line"])
                        if target == "file":
                            check(reference(dest, digest, bs) == want,
                                  what + ": reference over target file")

        # Vector images copied into memory: ground truth from blksum.
        for row in vectors():
            if row["name"] not in ("mixed-1m", "sparse-5m-unaligned"):
                continue
            what = "nbdcopy %s -> memory %s/%d" % (
                row["name"], row["algorithm"], row["block_size"])
            if os.path.exists(result):
                os.unlink(result)
            p = nbdkit(["memory", "size=%d" % row["size"]],
                       ["blkhash-digest=" + row["algorithm"],
                        "blkhash-block-size=%d" % row["block_size"],
                        "blkhash-file=" + result],
                       run='nbdcopy %s "$uri"' % shlex.quote(
                           image(row["name"])))
            last = check_run(what, p, row["digest"], result)
            if last is not None:
                check(last.get("size") == str(row["size"]), what + ": size=",
                      last["line"])
    finish()


if __name__ == "__main__":
    main()
