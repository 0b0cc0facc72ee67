#!/usr/bin/python3
"""blkhash-whole: the ordinary digest of the whole export (sha256sum's
value), under unordered traffic, against hashlib / sha256sum / xxhsum.

- nbdcopy (2 connections x 64 requests, unordered) into a file: the
  whole= value is sha256sum of the target, with no read-back at the
  default window;
- a qcow2 file read by qemu-img convert through the file plugin and
  through the curl plugin (loopback HTTP server, bytes served counted):
  blkhash-expect=sha256:HEX passes with sha256sum's value and fails with
  another, downloading at most 1.05 times the file;
- random permutations and splits of writes, zeroes and reads through
  nbdsh with a small window (gap reads, rewrites behind the cursor, a
  short tail, odd sizes, several connections): always hashlib's value;
- a plugin failing reads in a range no client touches: verdict
  incomplete, never a value;
- xxh128 against xxhsum -H2;
- alone (blkhash-digest=none): the line leads with sha256sum's value,
  the sum-format result file passes `sha256sum -c`, the CDI flow through
  curl (right and wrong values, bytes served), random traffic with a small
  window, failed reads (incomplete), blake2b512 against b2sum.
"""

import hashlib
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (ENV, check, finish, nbdkit, parse_reports,  # noqa: E402
                     tempdir)
from test_verify import HttpServer  # noqa: E402


def whole_of(stderr):
    reports = parse_reports(stderr)
    return reports[-1] if reports else {}


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_random(path, size, data_fraction, seed):
    rng = random.Random(seed)
    content = bytearray(size)
    for offset in range(0, size, 1 << 20):
        if rng.random() < data_fraction:
            n = min(1 << 20, size - offset)
            content[offset:offset + n] = rng.randbytes(n)
    with open(path, "wb") as f:
        f.write(content)
    return bytes(content)


def nbdcopy_into_file(tmp, name, size, seed, filter_args):
    """nbdcopy of `size` random bytes into a new empty file through the
    filter, then the check.  Returns (source, target, CompletedProcess)."""
    src = os.path.join(tmp, name + "-src.raw")
    dst = os.path.join(tmp, name + "-dst.raw")
    write_random(src, size, 0.7, seed)
    with open(dst, "wb") as f:
        f.truncate(size)
    p = nbdkit(["file", dst], filter_args,
               run='nbdcopy %s "$uri" && nbdinfo --list "$uri" >/dev/null'
               % src)
    return src, dst, p


def test_nbdcopy_target(tmp):
    src, dst, p = nbdcopy_into_file(tmp, "copy", 300 << 20, 1,
                                    ["blkhash-whole=sha256"])
    r = whole_of(p.stderr)
    want = "sha256:" + sha256_file(dst)
    check(p.returncode == 0 and r.get("whole") == want,
          "nbdcopy into a file: whole == sha256sum of the target",
          (want, p.stderr[-2000:]))
    check(want == "sha256:" + sha256_file(src), "nbdcopy copied the source")
    check(r.get("whole-read") == "0" and r.get("verdict") == "computed",
          "nbdcopy into a file: nothing read back at the default window", r)


def test_qcow2_file(tmp):
    raw = os.path.join(tmp, "guest.raw")
    write_random(raw, 48 << 20, 0.5, 2)
    qcow2 = os.path.join(tmp, "guest.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw,
                    qcow2], check=True, env=ENV)
    right = sha256_file(qcow2)
    wrong = hashlib.sha256(b"not it").hexdigest()
    out = os.path.join(tmp, "out.raw")
    convert = ('qemu-img convert -f qcow2 "$uri" -O raw %s && '
               'nbdinfo --list "$uri" >/dev/null' % out)

    for expect, ok in ((right, True), (wrong, False)):
        p = nbdkit(["file", qcow2], ["blkhash-expect=sha256:" + expect],
                   run=convert, extra=["-r"])
        r = whole_of(p.stderr)
        what = "qcow2 file, %s value" % ("right" if ok else "wrong")
        check((p.returncode == 0) == ok, what + ": check exit status",
              p.stderr[-2000:])
        check(r.get("whole") == "sha256:" + right,
              what + ": whole == sha256sum of the file", r)
        check(r.get("verdict") == ("match" if ok else "mismatch"),
              what + ": verdict", r)
        check(int(r.get("whole-read", -1)) < os.path.getsize(qcow2) // 20,
              what + ": the filter read under 5% itself", r)

    # Through the curl plugin: bytes the server sent.
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.link(qcow2, os.path.join(www, "guest.qcow2"))
    log = os.path.join(tmp, "http.log")
    server = HttpServer(www, log)
    try:
        for expect, ok in ((right, True), (wrong, False)):
            open(log, "w").close()
            p = nbdkit(["curl", server.url("guest.qcow2"), "protocols=http"],
                       ["blkhash-expect=sha256:" + expect],
                       run='qemu-img info "$uri" >/dev/null && ' + convert,
                       extra=["-r"])
            what = "curl qcow2, %s value" % ("right" if ok else "wrong")
            check_download(what, p, ok, log, qcow2)
    finally:
        server.stop()


def check_download(what, p, ok, log, qcow2):
    """The check's exit status says ok; the HTTP server sent at most 1.05
    times the file."""
    check((p.returncode == 0) == ok, what + ": check exit status",
          p.stderr[-2000:])
    served = served_bytes(log, os.path.getsize(qcow2))
    check(served <= 1.05 * os.path.getsize(qcow2),
          what + ": at most 1.05 x the file downloaded",
          (served, os.path.getsize(qcow2)))


def served_bytes(log, size):
    total = 0
    with open(log) as f:
        for line in f:
            method, _, rng, status = line.split()[:4]
            if method != "GET":
                continue
            if rng == "-":
                total += size
                continue
            a, b = rng.split("=")[1].split("-")
            start = int(a) if a else size - int(b)
            end = min(int(b) + 1, size) if a and b else size
            total += end - start
    return total


TRAFFIC = r'''
import os, random, sys
import nbd
seed, size, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
handles = []
for i in range(conns):
    h = nbd.NBD()
    h.connect_uri(sys.argv[5])
    handles.append(h)
content = bytearray(size)
# Pieces of random sizes in random order, some rewritten later (behind
# the cursor), some zeroed, some read first.
pieces = []
at = 0
while at < size:
    n = min(rng.randrange(1, 300000), size - at)
    pieces.append((at, n))
    at += n
rng.shuffle(pieces)
for i, (off, n) in enumerate(pieces):
    h = handles[i % conns]
    kind = rng.random()
    if kind < 0.15:
        h.zero(n, off)
        content[off:off + n] = bytes(n)
    elif kind < 0.3:
        h.pread(n, off)
    else:
        data = rng.randbytes(n)
        h.pwrite(data, off)
        content[off:off + n] = data
    if rng.random() < 0.05 and i:
        off2, n2 = pieces[rng.randrange(i)]
        data = rng.randbytes(n2)
        handles[0].pwrite(data, off2)
        content[off2:off2 + n2] = data
for h in handles:
    h.shutdown()
with open(sys.argv[4], "wb") as f:
    f.write(content)
'''


def test_random_traffic(tmp):
    script = os.path.join(tmp, "traffic.py")
    with open(script, "w") as f:
        f.write(TRAFFIC)
    expected_file = os.path.join(tmp, "expected")
    for seed, size, conns, window in ((1, 5 << 20, 1, "64K"),
                                      (2, 3 << 20, 3, "1M"),
                                      (3, 4097, 2, "4K"),
                                      (4, 1, 1, "4K"),
                                      (5, 7 * 65536 + 3, 4, "256M")):
        p = nbdkit(["memory", str(size)],
                   ["blkhash-whole=sha256", "blkhash-whole-window=" + window],
                   run='/usr/bin/python3 %s %d %d %d %s "$uri" && '
                       'nbdinfo --list "$uri" >/dev/null'
                   % (script, seed, size, conns, expected_file))
        what = "random traffic seed %d size %d conns %d window %s" % (
            seed, size, conns, window)
        if not check(p.returncode == 0, what + ": runs", p.stderr[-2000:]):
            continue
        with open(expected_file, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        check(whole_of(p.stderr).get("whole") == "sha256:" + want,
              what + ": whole == hashlib", whole_of(p.stderr))
    # An empty export.
    p = nbdkit(["memory", "0"], ["blkhash-whole=sha256"],
               run='nbdinfo --list "$uri" >/dev/null')
    check(whole_of(p.stderr).get("whole") ==
          "sha256:" + hashlib.sha256(b"").hexdigest(), "empty export",
          p.stderr[-1000:])


FLAKY_PLUGIN = r'''#!/bin/bash
# 4 MiB of data; reads touching the last MiB fail.
case "$1" in
  get_size) echo 4194304 ;;
  can_write) exit 0 ;;
  pread)
    if [ $(( $4 + $3 )) -gt 3145728 ]; then echo "EIO injected" >&2; exit 1; fi
    dd if=/dev/zero bs=1 count=$3 status=none | tr '\0' 'x' ;;
  pwrite) cat >/dev/null ;;
  *) exit 2 ;;
esac
'''


def test_failed_reads(tmp):
    plugin = os.path.join(tmp, "flaky.sh")
    with open(plugin, "w") as f:
        f.write(FLAKY_PLUGIN)
    os.chmod(plugin, 0o755)
    # A client reads the first MiB only; the report must read the rest.
    p = nbdkit(["sh", plugin],
               ["blkhash-expect=sha256:" + "0" * 64],
               run='nbdsh -u "$uri" -c "h.pread(1048576, 0)" && '
                   'nbdinfo --list "$uri" >/dev/null')
    r = whole_of(p.stderr)
    check(p.returncode != 0, "failed reads: the check fails", p.stderr[-1500:])
    check(r.get("whole") == "sha256:incomplete"
          and r.get("verdict") == "incomplete",
          "failed reads: whole=incomplete, verdict incomplete", r)


def test_xxh128(tmp):
    src = os.path.join(tmp, "x.raw")
    write_random(src, 5 << 20, 0.6, 7)
    p = nbdkit(["file", src], ["blkhash-whole=xxh128"],
               run='nbdcopy "$uri" null: && nbdinfo --list "$uri" >/dev/null',
               extra=["-r"])
    xxhsum = subprocess.run(["xxhsum", "-H2", src], capture_output=True,
                            text=True, env=ENV).stdout.split()[0]
    check(whole_of(p.stderr).get("whole") == "xxh128:" + xxhsum,
          "xxh128 == xxhsum -H2", (xxhsum, p.stderr[-1000:]))


def test_completion_refused(tmp):
    """Write side, no check: the request after which every byte has
    passed the cursor waits for the digest and fails with EIO if it is
    not the expected one, so the copy tool itself fails (a flush is not
    enough: qemu-img convert ignores a failed flush, nbdcopy sends none);
    with the right value it succeeds."""
    src = os.path.join(tmp, "flush-src.raw")
    write_random(src, 20 << 20, 0.7, 21)
    right = sha256_file(src)
    wrong = hashlib.sha256(b"not it").hexdigest()
    for tool, run in (
            ("qemu-img", 'qemu-img convert -n -f raw -O raw %s "$uri"' % src),
            ("nbdcopy", 'nbdcopy %s "$uri"' % src)):
        for digest_args in ([], ["blkhash-digest=none"]):
            for expect, ok in ((right, True), (wrong, False)):
                p = nbdkit(["memory", str(20 << 20)],
                           digest_args + ["blkhash-expect=sha256:" + expect],
                           run=run)
                what = "%s%s, %s value, no check" % (
                    tool, " (digest none)" if digest_args else "",
                    "right" if ok else "wrong")
                check((p.returncode == 0) == ok,
                      what + ": the copy's own exit status",
                      p.stderr[-1500:])
                if not ok:
                    check("checksum MISMATCH" in p.stderr and
                          "whole-expect=MISMATCH whole-expected=" + wrong
                          in p.stderr,
                          what + ": the error names the mismatch",
                          p.stderr[-1500:])


def make_qcow2(tmp, size, seed):
    raw = os.path.join(tmp, "alone.raw")
    write_random(raw, size, 0.5, seed)
    qcow2 = os.path.join(tmp, "alone.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw,
                    qcow2], check=True, env=ENV)
    return qcow2


def test_alone(tmp):
    """blkhash-digest=none: the whole-image digest alone."""
    result = os.path.join(tmp, "alone.sum")
    src, dst, p = nbdcopy_into_file(
        tmp, "alone", 100 << 20, 11,
        ["blkhash-digest=none", "blkhash-whole=sha256",
         "blkhash-file=" + result, "blkhash-file-format=sum"])
    r = whole_of(p.stderr)
    want = sha256_file(dst)
    what = "alone, nbdcopy into a file"
    check(p.returncode == 0 and r.get("label") == "sha256"
          and r.get("digest") == want,
          what + ": the line leads with sha256 and sha256sum's value",
          (want, p.stderr[-2000:]))
    check(r.get("whole") == "sha256:" + want and r.get("whole-read") == "0"
          and r.get("verdict") == "computed",
          what + ": whole= the same, nothing read back, verdict computed", r)
    check("hashed" not in r and "read" not in r,
          what + ": no blkhash fields in the line", r.get("line"))
    with open(dst, "rb") as stdin:
        c = subprocess.run(["sha256sum", "-c", result], stdin=stdin,
                           capture_output=True, text=True, env=ENV)
    check(c.returncode == 0 and c.stdout.strip() == "-: OK",
          what + ": the sum-format result file passes sha256sum -c",
          (c.stdout, c.stderr))

    # The CDI flow: a qcow2 downloaded through curl and converted.
    qcow2 = make_qcow2(tmp, 32 << 20, 12)
    right = sha256_file(qcow2)
    wrong = hashlib.sha256(b"not it").hexdigest()
    www = os.path.join(tmp, "www-alone")
    os.mkdir(www)
    os.link(qcow2, os.path.join(www, "guest.qcow2"))
    log = os.path.join(tmp, "http-alone.log")
    server = HttpServer(www, log)
    out = os.path.join(tmp, "alone-out.raw")
    try:
        for expect, ok in ((right, True), (wrong, False)):
            open(log, "w").close()
            p = nbdkit(["curl", server.url("guest.qcow2"), "protocols=http"],
                       ["blkhash-digest=none",
                        "blkhash-expect=sha256:" + expect],
                       run='qemu-img convert -f qcow2 "$uri" -O raw %s && '
                           'nbdinfo --list "$uri" >/dev/null' % out,
                       extra=["-r"])
            r = whole_of(p.stderr)
            what = "alone, curl qcow2, %s value" % ("right" if ok else "wrong")
            check(r.get("digest") == right and r.get("verdict") ==
                  ("match" if ok else "mismatch"),
                  what + ": sha256sum's value and the verdict", r)
            check_download(what, p, ok, log, qcow2)
    finally:
        server.stop()

    # Unordered traffic, several connections, a small window.
    script = os.path.join(tmp, "traffic.py")
    with open(script, "w") as f:
        f.write(TRAFFIC)
    expected_file = os.path.join(tmp, "alone-expected")
    p = nbdkit(["memory", str(3 << 20)],
               ["blkhash-digest=none", "blkhash-whole=sha256",
                "blkhash-whole-window=64K"],
               run='/usr/bin/python3 %s 6 %d 3 %s "$uri" && '
                   'nbdinfo --list "$uri" >/dev/null'
               % (script, 3 << 20, expected_file))
    if check(p.returncode == 0, "alone, random traffic: runs",
             p.stderr[-2000:]):
        with open(expected_file, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        check(whole_of(p.stderr).get("digest") == want,
              "alone, random traffic: hashlib's value", whole_of(p.stderr))

    # A range no client reads fails: incomplete, never a value.
    plugin = os.path.join(tmp, "flaky.sh")
    with open(plugin, "w") as f:
        f.write(FLAKY_PLUGIN)
    os.chmod(plugin, 0o755)
    p = nbdkit(["sh", plugin], ["blkhash-digest=none", "blkhash-whole=sha256"],
               run='nbdsh -u "$uri" -c "h.pread(1048576, 0)" && '
                   'nbdinfo --list "$uri" >/dev/null')
    r = whole_of(p.stderr)
    check(p.returncode != 0 and r.get("digest") == "incomplete"
          and r.get("verdict") == "incomplete",
          "alone, failed reads: the check fails, incomplete", r)

    # Another digest, against its own tool.
    p = nbdkit(["file", src], ["blkhash-digest=none",
                               "blkhash-whole=blake2b512"],
               run='nbdcopy "$uri" null: && nbdinfo --list "$uri" >/dev/null',
               extra=["-r"])
    b2sum = subprocess.run(["b2sum", src], capture_output=True, text=True,
                           env=ENV).stdout.split()[0]
    check(whole_of(p.stderr).get("digest") == b2sum,
          "alone, blake2b512 == b2sum", (b2sum, p.stderr[-1000:]))


def main():
    with tempdir() as tmp:
        for test in (test_nbdcopy_target, test_qcow2_file, test_random_traffic,
                     test_failed_reads, test_xxh128, test_alone,
                     test_completion_refused):
            test(tmp)
    finish()


if __name__ == "__main__":
    main()
