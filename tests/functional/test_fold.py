#!/usr/bin/python3
"""Folding the settled prefix (blkhash-fold, on by default) through nbdkit.

A sequential copy folds the leaves of every block it has written into the
outer hash as it goes.  Writing again into a folded block cannot update a
leaf that is gone: the filter must unfold, read back what became unknown
at the report, say so (unfolded=), and still report the checksum of the
final content, never a stale one.

Cases, on the file plugin over a 40 MiB file of random bytes, sha256/64K:
  - a sequential write of the whole export, then a rewrite of block 0:
    everything unfolds, the report reads back all but the rewritten block
    (read=size-64K, unfolded=size) and equals the reference of the file;
  - the same with blkhash-fold=false: nothing unfolds, nothing is read;
  - a sequential write with no rewrite: no unfolded=, read=0;
  - nbdcopy (unordered writes, 2 connections) then a rewrite through a
    second client into the middle of the export.
Expected values: harness.reference (hashlib) over the backing file after
nbdkit exited.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ENV, check, finish, reference, tempdir  # noqa: E402
from traffic import Server  # noqa: E402

import subprocess  # noqa: E402

SIZE = 40 << 20
BLOCK = 65536
CHUNK = 1 << 20


def make_file(path, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(rng.randbytes(SIZE))


def write_sequentially(h, rng):
    for offset in range(0, SIZE, CHUNK):
        h.pwrite(rng.randbytes(CHUNK), offset)


def run_case(tmp, name, filter_args, rewrite_at):
    """Writes the whole export in order on one connection; then, if
    rewrite_at is not None, writes 64K there; disconnects; returns
    (report, expected)."""
    path = os.path.join(tmp, name + ".img")
    make_file(path, 1)
    server = Server(tmp, ["file", path], filter_args, tag=name)
    rng = random.Random(2)
    h = server.connect()
    write_sequentially(h, rng)
    if rewrite_at is not None:
        h.pwrite(rng.randbytes(BLOCK), rewrite_at)
    h.flush()
    h.shutdown()
    server.handles.remove(h)
    status, log = server.stop()
    check(status == 0, name + ": nbdkit exits cleanly", log)
    reports = server.reports()
    check(len(reports) >= 1, name + ": a report", log)
    return (reports[0] if reports else {}), reference(path)


def main():
    with tempdir() as tmp:
        report, expected = run_case(tmp, "rewrite", [], 0)
        check(report.get("digest") == expected,
              "rewrite of block 0: report == reference", report)
        check(report.get("unfolded") == str(SIZE),
              "rewrite of block 0: everything unfolded", report)
        check(report.get("read") == str(SIZE - BLOCK),
              "rewrite of block 0: all but that block read back", report)
        check(report.get("hashed") == str(SIZE + BLOCK),
              "rewrite of block 0: every write hashed", report)

        report, expected = run_case(tmp, "nofold", ["blkhash-fold=false"], 0)
        check(report.get("digest") == expected,
              "fold=false: report == reference", report)
        check("unfolded" not in report and report.get("read") == "0",
              "fold=false: nothing unfolded, nothing read", report)

        report, expected = run_case(tmp, "sequential", [], None)
        check(report.get("digest") == expected,
              "sequential: report == reference", report)
        check("unfolded" not in report and report.get("read") == "0",
              "sequential: nothing unfolded, nothing read", report)

        # nbdcopy into the export, then another client rewrites 100K in
        # the middle: back to the checkpoint at 0 (one region of 65536
        # blocks covers the whole export), so all of it unfolds.
        path = os.path.join(tmp, "copy.img")
        make_file(path, 3)
        source = os.path.join(tmp, "source.img")
        make_file(source, 4)
        server = Server(tmp, ["file", path], [], tag="copy")
        uri = "nbd+unix:///?socket=" + server.sock
        p = subprocess.run(["nbdcopy", source, uri], env=ENV,
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, "nbdcopy into the export", p.stderr)
        server.wait_reports(1)
        h = server.connect()
        h.pwrite(b"\x5a" * 100000, SIZE // 2 + 1000)
        h.shutdown()
        server.handles.remove(h)
        server.wait_reports(2)
        status, log = server.stop()
        reports = server.reports()
        with open(source, "rb") as f:
            copied = f.read()
        check(len(reports) >= 2, "copy: two reports", log)
        if len(reports) >= 2:
            check(reports[0]["digest"] == reference(copied),
                  "copy: first report == reference of the source",
                  reports[0])
            check("unfolded" not in reports[0]
                  and reports[0].get("read") == "0",
                  "copy: nbdcopy's unordered writes never unfold",
                  reports[0])
            check(reports[1]["digest"] == reference(path),
                  "copy: report after the rewrite == reference", reports[1])
            check(reports[1].get("unfolded") == str(SIZE),
                  "copy: the rewrite unfolded the export", reports[1])
            check(int(reports[1].get("read", 0)) >= SIZE - 3 * BLOCK,
                  "copy: the unfolded blocks were read back", reports[1])
    finish()


if __name__ == "__main__":
    main()
