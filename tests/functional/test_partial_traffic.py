#!/usr/bin/python3
"""Partial traffic: clients that touch only some of an existing export still
get the checksum of the WHOLE export.  A client (nbdsh) writes, zeroes or
trims a few blocks of a file export, or reads only part of it; the report
must equal the independent reference over the whole final file (and over
the bytes we expect it to hold), which proves the filter read the rest from
the plugin (read= > 0).  Covered with and without plugin extents
(--filter=noextents), with an unaligned export size, with several digests,
and over two sequential connections.
"""

import os
import random
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, nbdkit, parse_reports,  # noqa: E402
                     reference, tempdir)

MIB = 1 << 20
B = 65536
SIZE = 16 * MIB + 123          # unaligned: the last block is short


def pattern(seed, length):
    return bytes((i * 7 + seed) % 256 for i in range(length))


def make_file(path):
    """Random data in places, holes elsewhere; returns its bytes."""
    rng = random.Random(7)
    data = bytearray(SIZE)
    for offset, length in ((0, 3 * B + 5), (MIB + 999, 2 * MIB),
                           (9 * MIB, 5 * B), (SIZE - 20000, 20000)):
        data[offset:offset + length] = rng.randbytes(length)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for offset, length in ((0, 3 * B + 5), (MIB + 999, 2 * MIB),
                               (9 * MIB, 5 * B), (SIZE - 20000, 20000)):
            f.seek(offset)
            f.write(data[offset:offset + length])
    return data


def apply(data, ops):
    """What the file should hold after ops (file plugin: trim punches a
    hole, which reads back as zeros)."""
    data = bytearray(data)
    for op in ops:
        kind, offset, length = op[0], op[1], op[2]
        if kind == "write":
            data[offset:offset + length] = pattern(op[3], length)
        elif kind in ("zero", "trim"):
            data[offset:offset + length] = bytes(length)
    return bytes(data)


def nbdsh_code(ops):
    lines = []
    for op in ops:
        kind, offset, length = op[0], op[1], op[2]
        if kind == "write":
            lines.append("h.pwrite(bytes((i * 7 + %d) %% 256 for i in "
                         "range(%d)), %d)" % (op[3], length, offset))
        elif kind == "zero":
            lines.append("h.zero(%d, %d)" % (length, offset))
        elif kind == "trim":
            lines.append("assert h.can_trim()")
            lines.append("h.trim(%d, %d)" % (length, offset))
        elif kind == "read":
            lines.append("assert len(h.pread(%d, %d)) == %d"
                         % (length, offset, length))
    lines.append("h.flush()" if any(op[0] != "read" for op in ops) else "pass")
    return "; ".join(lines)


def nbdsh_run(ops):
    return 'nbdsh -u "$uri" -c %s' % shlex.quote(nbdsh_code(ops))


CASES = [
    # name, ops, extra plugin filters, (digest, block size params)
    ("write one full block", [("write", 5 * B, B, 1)], []),
    ("write unaligned bytes", [("write", 3 * B + 17, 100, 2),
                               ("write", MIB + 998, 3, 3)], []),
    ("write into the short last block", [("write", SIZE - 50, 50, 4)], []),
    ("write, zero and trim", [("write", 12 * MIB + 1, 2 * B, 5),
                              ("zero", MIB + 4096, 3 * B + 1),
                              ("trim", 9 * MIB, 2 * B)], []),
    ("read part", [("read", MIB, 4096)], []),
    ("read one full block", [("read", 0, B)], []),
    ("write one block, no extents", [("write", 5 * B, B, 6)],
     ["--filter=noextents"]),
    ("read part, no extents", [("read", 2 * MIB + 3, 10000)],
     ["--filter=noextents"]),
]

CONFIGS = [
    ([], "sha256", B),
    (["blkhash-digest=xxh128", "blkhash-block-size=4K"], "xxh128", 4096),
    (["blkhash-digest=sha1", "blkhash-block-size=1M"], "sha1", MIB),
]


def main():
    with tempdir() as tmp:
        path = os.path.join(tmp, "disk.img")
        result = os.path.join(tmp, "result")
        for name, ops, filters in CASES:
            for params, digest, bs in CONFIGS:
                what = "%s %s/%d" % (name, digest, bs)
                original = make_file(path)
                if os.path.exists(result):
                    os.unlink(result)
                p = nbdkit([*filters, "file", path],
                           params + ["blkhash-file=" + result],
                           run=nbdsh_run(ops))
                if not check(p.returncode == 0, what + ": exit status",
                             p.stderr[-3000:]):
                    continue
                with open(path, "rb") as f:
                    final = f.read()
                expected = apply(original, ops)
                check(final == expected, what + ": file holds what we wrote")
                want = reference(final, digest, bs)
                check(want == reference(expected, digest, bs),
                      what + ": reference of expected bytes")
                reports = parse_reports(p.stderr)
                if not check(len(reports) == 1, what + ": one report",
                             p.stderr[-3000:]):
                    continue
                r = reports[0]
                check(r["digest"] == want, what + ": report == reference "
                      "over the whole final file", "%s != %s"
                      % (r["line"], want))
                with open(result) as f:
                    check(f.read() == want + "\n", what + ": result file")
                check(r.get("size") == str(SIZE), what + ": size=",
                      r["line"])
                read = int(r.get("read", "0"))
                touched = sum(op[2] for op in ops)
                check(0 < read <= SIZE, what + ": 0 < read= <= size",
                      r["line"])
                if filters:
                    # Without extents, all untouched bytes must be read.
                    check(read >= SIZE - touched,
                          what + ": read= covers the untouched export",
                          r["line"])

        # Two sequential connections: one writes part of a block and the
        # check follows; the next reads part and the check follows again.
        # The first check reports the whole file (reading the rest); the
        # reader changed nothing, so no other report is made.
        original = make_file(path)
        ops = [("write", 7 * B + 3, 5000, 9)]
        check_idiom = ' && nbdinfo --list "$uri" >/dev/null'
        run = (nbdsh_run(ops) + check_idiom + " && " +
               nbdsh_run([("read", 0, 4096)]) + check_idiom)
        p = nbdkit(["file", path], ["blkhash-file=" + result], run=run)
        check(p.returncode == 0, "two connections: exit status",
              p.stderr[-3000:])
        with open(path, "rb") as f:
            want = reference(f.read())
        check(want == reference(apply(original, ops)),
              "two connections: file holds what we wrote")
        reports = parse_reports(p.stderr)
        check(len(reports) == 1, "two connections: one report",
              p.stderr[-3000:])
        check(all(r["digest"] == want for r in reports),
              "two connections: the report == reference", p.stderr[-3000:])
        if len(reports) == 1:
            check(int(reports[0]["read"]) > 0,
                  "two connections: the report read the rest",
                  reports[0]["line"])
    finish()


if __name__ == "__main__":
    main()
