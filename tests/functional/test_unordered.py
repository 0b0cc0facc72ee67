#!/usr/bin/python3
"""Unordered, parallel, multi-connection traffic gives the right checksum.

Proves that the filter's report equals the blkhash of the export's final
content however the content got there: several NBD connections at once,
each with many asynchronous requests in flight, at random unaligned
offsets, overlapping each other (within a connection and across
connections), mixing writes, write-zeroes, trims and reads.  The value
only depends on (digest, block size, final content), never on the order
in which requests arrived or were answered.

Cases (fixed seeds):
  - memory plugin, 4 connections x random mixed ops, sha256/64K and
    xxh128/4K;
  - file plugin over a file pre-filled with random data (odd size), 4
    connections x random mixed ops, sha256/4K and xxh128/64K: the report
    must also read back the blocks no client touched;
  - "issue 6": 8 connections, 64 requests in flight each, only writes of
    random overlapping ranges, sha256/64K and xxh128/4K.

The expected value is the independent Python reference (harness.reference,
hashlib) over the final content: for the memory plugin read back through a
fresh connection after the clients disconnected, for the file plugin the
backing file after nbdkit exited.  Note trims on these plugins make data
read back as zeros, which is why the content is read back rather than
modelled.

Server, drive() and random_ops() are in traffic.py.
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, no_crash, parse_reports,  # noqa: E402
                     reference, tempdir)
from traffic import (MIXED, Server, close, drive, random_file_server,  # noqa: E402
                     random_ops)


def size_name(n):
    return "%dK" % (n // 1024) if n < 1 << 20 else "%dM" % (n >> 20)


# --- Cases --------------------------------------------------------------------

WRITES = {"write": 1}


def memory_case(what, size, conns, depth, nops, mix, max_len, digest, bs,
                seed):
    label = "%s/%s" % (digest, size_name(bs))
    rng = random.Random(seed)
    with tempdir() as tmp:
        srv = Server(tmp, ["memory", "size=%d" % size],
                     ["blkhash-digest=" + digest,
                      "blkhash-block-size=%d" % bs])
        final = None
        try:
            handles = [srv.connect() for _ in range(conns)]
            ops = [random_ops(rng, size, nops, mix, max_len)
                   for _ in handles]
            t0 = time.time()
            ok, failed, errors = drive(handles, ops, depth)
            check(failed == 0, what + ": every request succeeds",
                  errors[:3])
            close(handles)
            del handles
            first = srv.settle()
            t1 = time.time()
            check(len(first) == 1,
                  what + ": one report when the clients left (at their "
                  "disconnect or by the check)", [r["line"] for r in first])
            final = srv.read_back()
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
        reports = parse_reports(log)
        # Reading changes nothing: no report is due after the reader.
        check(len(reports) == 1, what + ": one report (after the writers)",
              log[-2000:])
        if final is not None:
            expected = reference(final, digest, bs)
            for r in reports:
                check(r["digest"] == expected and r["label"] == label and
                      r.get("size") == str(size),
                      what + ": report equals the reference of the final "
                      "content", "%s != %s" % (r["line"], expected))
        print("%s: %d ops on %d connections (%.1f s to first report)" %
              (what, conns * nops, conns, t1 - t0), flush=True)


def file_case(what, size, conns, depth, nops, mix, max_len, digest, bs,
              seed, expect_read=True):
    label = "%s/%s" % (digest, size_name(bs))
    rng = random.Random(seed)
    with tempdir() as tmp:
        path, srv = random_file_server(tmp, rng, size, digest, bs)
        try:
            handles = [srv.connect() for _ in range(conns)]
            ops = [random_ops(rng, size, nops, mix, max_len)
                   for _ in handles]
            ok, failed, errors = drive(handles, ops, depth)
            check(failed == 0, what + ": every request succeeds",
                  errors[:3])
            close(handles)
            del handles
            srv.settle()
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
        reports = parse_reports(log)
        expected = reference(path, digest, bs)
        check(len(reports) >= 1, what + ": a report", log[-2000:])
        for r in reports:
            check(r["digest"] == expected and r["label"] == label and
                  r.get("size") == str(size),
                  what + ": report equals the reference of the file",
                  "%s != %s" % (r["line"], expected))
        if reports and expect_read:
            check(int(reports[0].get("read", "0")) > 0,
                  what + ": blocks no client touched were read back",
                  reports[0]["line"])
        print("%s: %d ops on %d connections" % (what, conns * nops, conns),
              flush=True)


def main():
    start = time.time()
    memory_case("memory 4 conns mixed sha256/64K", 24 << 20, 4, 16, 1500,
                MIXED, 300000, "sha256", 65536, 101)
    memory_case("memory 4 conns mixed xxh128/4K", 24 << 20, 4, 16, 1500,
                MIXED, 300000, "xxh128", 4096, 102)
    # Writes of 1 MiB and more are recorded in slices by the hashing
    # threads while the plugin writes them.
    memory_case("memory 4 conns large writes sha256/64K", 48 << 20, 4, 4,
                120, MIXED, 5 << 20, "sha256", 65536, 105)
    memory_case("memory 2 conns large writes xxh128/4K", (40 << 20) + 4321,
                2, 4, 120, MIXED, 3 << 20, "xxh128", 4096, 106)
    file_case("file 4 conns mixed sha256/4K", (16 << 20) + 12345, 4, 16,
              1000, MIXED, 200000, "sha256", 4096, 103)
    file_case("file 4 conns mixed xxh128/64K", (16 << 20) + 12345, 4, 16,
              1000, MIXED, 200000, "xxh128", 65536, 104)
    for seed in (6, 60, 600):
        memory_case("issue 6 (seed %d): 8 conns x 64 in flight sha256/64K"
                    % seed, 4 << 20, 8, 64, 512, WRITES, 131072, "sha256",
                    65536, seed)
        memory_case("issue 6 (seed %d): 8 conns x 64 in flight xxh128/4K"
                    % seed, 4 << 20, 8, 64, 512, WRITES, 131072, "xxh128",
                    4096, seed + 1)
    memory_case("8 conns x 64 in flight, writes racing reads, sha256/4K",
                2 << 20, 8, 64, 512, {"write": 1, "read": 1}, 65536,
                "sha256", 4096, 61)
    file_case("issue 6 on file: 8 conns x 64 in flight sha256/4K",
              (4 << 20) + 1, 8, 64, 512, WRITES, 131072, "sha256", 4096, 666,
              expect_read=False)
    print("total %.1f s" % (time.time() - start))
    finish()


if __name__ == "__main__":
    main()
