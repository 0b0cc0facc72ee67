#!/usr/bin/python3
"""Verification workflows: blkhash-expect and blkhash-verify.

blkhash-expect=HEX, with real copy tools on both sides of a copy:
- target side (memory plugin; qemu-img convert -n and nbdcopy, raw and
  qcow2 sources), source side (file plugin; qemu-img convert and nbdcopy)
  and the nbd plugin in front of qemu-nbd serving a qcow2: with the right
  value the copy succeeds, the report says expect=verified and the result
  file holds the value; with one byte changed in the source, or a wrong
  value, the tool exits non-zero, nbdkit logs "the image is complete:
  checksum MISMATCH: sha256/64K <actual> expect=MISMATCH
  expected=<expected>" (the report line's words) and the
  report says expect=MISMATCH expected=<expected>;
- a qcow2 file downloaded by the curl plugin from a loopback HTTP server
  with byte ranges (range_http_server.py), converted by qemu-img, then
  the check (nbdinfo --list): qemu-img never reads the refcount blocks,
  so the filter reads the rest when the check asks for the verdict
  (read > 0).  A match exits 0; a changed data byte, a changed byte that
  qemu-img never reads (an unused refcount entry: the converted image is
  still correct) and a wrong value make the check fail (non-zero exit),
  and its error line, after the report, says verdict mismatch;
- exactly which request fails: a Python NBD client sees EIO on the write,
  zero, read or block status that makes every block known, and on every
  later flush, but not before; with the right value nothing fails;
- upper case hex is accepted; a wrong length (sha256, xxh128), non-hex or
  empty value stops nbdkit at start-up with an error naming
  blkhash-expect; xxh128 values work.

blkhash-verify=true: after nbdcopy / qemu-img into a file target the
report says verify=match with readback == the reference over the target
file and verify-read > 0; when the backing file is changed behind the
filter's back while a client is still connected, the report says
verify=MISMATCH, its checksum is the reference over what the client wrote,
readback is the reference over the changed file, the check fails, and a
later plain connection is not refused.

Every expected value comes from the independent hashlib reference() over
the relevant raw bytes, never from the filter.

Limits of the tools, not of the filter: nbdkit 1.32 does not pass error
text to clients (a failed check reaches nbdinfo as "Operation not
supported"), so the verdict is checked in nbdkit's log; and nbdkit 1.32 can
abort when a multi-connection nbdcopy dies with requests in flight, see
mismatch_runs().
"""

import json
import os
import random
import re
import shlex
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, flip_hex, nbdkit,  # noqa: E402
                     parse_reports, read, reference, start_qemu_nbd,
                     stop_pid, tempdir, ENV, HttpServer)

MIB = 1 << 20
SIZE = 8 * MIB + 1536            # the last 64K block is short

# (offset, length) of random data; everything else is zero (holes).
EXTENTS = [
    (12345, 300000),
    (3 * MIB - 7, 70000),            # straddles 64K boundaries
    (5 * MIB + 65536 - 100, 200),
    (SIZE - 5000, 5000),             # up to the last byte
]
CHANGED = 3 * MIB + 1000             # inside the second extent


def qemu_img_convert(fmt, src, dst, out_fmt="raw"):
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", out_fmt, src,
                    dst], check=True, env=ENV, capture_output=True)


def make_sources(tmp):
    rng = random.Random(31337)
    data = bytearray(SIZE)
    for offset, length in EXTENTS:
        data[offset:offset + length] = rng.randbytes(length)
    bad = bytearray(data)
    bad[CHANGED] ^= 0x5a
    paths = {}
    for name, content in (("src", data), ("bad", bad)):
        raw = os.path.join(tmp, name + ".raw")
        with open(raw, "wb") as f:
            f.write(content)
        qcow2 = os.path.join(tmp, name + ".qcow2")
        qemu_img_convert("raw", raw, qcow2, "qcow2")
        paths[name + ".raw"] = raw
        paths[name + ".qcow2"] = qcow2
    return bytes(data), bytes(bad), paths


def tail(text, n=3000):
    return text[-n:]


def reports_of(stderr):
    """The report lines themselves ("nbdkit: blkhash: ..."), parsed.  Error
    lines that quote a report are left out, and "read" and "verify-read"
    are taken from the line directly (the harness's key=value parser reads
    "verify-read=N" as a second "read=N")."""
    reports = []
    for line in stderr.splitlines():
        if not line.startswith("nbdkit: blkhash: "):
            continue
        for r in parse_reports(line):
            for key in ("read", "verify-read"):
                m = re.search(r" %s=([0-9]+)" % key, line)
                if m:
                    r[key] = m.group(1)
                else:
                    r.pop(key, None)
            reports.append(r)
    return reports


# --- Checks shared by the cases ----------------------------------------------


def completion_re(actual, expected, label="sha256/64K"):
    return re.compile(
        r'^nbdkit: \S+: error: blkhash: export "": the image is complete: '
        r'checksum MISMATCH: %s %s expect=MISMATCH expected=%s$'
        % (re.escape(label), actual, expected), re.M)


def expect_match(what, p, want, result=None):
    check(p.returncode == 0, what + ": exit status 0", tail(p.stderr))
    reports = reports_of(p.stderr)
    if not check(len(reports) >= 1, what + ": a report", tail(p.stderr)):
        return None
    check(all(r["digest"] == want for r in reports),
          what + ": every report == reference",
          "%s != %s" % (reports[-1]["line"], want))
    check(all(r.get("expect") == "verified" and "expected" not in r
              for r in reports),
          what + ": expect=verified", reports[-1]["line"])
    check("MISMATCH" not in p.stderr, what + ": no MISMATCH logged",
          tail(p.stderr))
    if result:
        check(os.path.exists(result) and read(result) ==
              (want + "\n").encode(), what + ": result file == reference")
    return reports[-1]


def expect_mismatch(what, p, actual, expected, completion=True,
                    label="sha256/64K", full=True):
    """A mismatch: non-zero exit, the report says expect=MISMATCH with both
    values, an nbdkit error line says MISMATCH; with completion, the client
    request that completed the image got the "image is complete" error.
    Without full, only the exit status and the completion error (see
    mismatch_runs)."""
    check(p.returncode != 0, what + ": non-zero exit", tail(p.stderr))
    if completion:
        check(completion_re(actual, expected, label).search(p.stderr)
              is not None,
              what + ": \"the image is complete: checksum MISMATCH\" with "
              "both values", tail(p.stderr))
    check("expect=verified" not in p.stderr, what + ": never verified",
          tail(p.stderr))
    if not full:
        return None
    reports = reports_of(p.stderr)
    if check(len(reports) >= 1, what + ": a report", tail(p.stderr)):
        last = reports[-1]
        check(last["digest"] == actual, what + ": report == reference of "
              "the actual content", "%s != %s" % (last["line"], actual))
        check(last.get("expect") == "MISMATCH"
              and last.get("expected") == expected,
              what + ": expect=MISMATCH expected=<value>", last["line"])
        check(" expect=MISMATCH expected=%s" % expected in last["line"],
              what + ": report line text", last["line"])
    errors = [l for l in p.stderr.splitlines()
              if ": error: " in l and "MISMATCH" in l]
    check(len(errors) >= 1, what + ": an nbdkit error line with MISMATCH",
          tail(p.stderr))
    return reports


def mismatch_runs(command):
    """(suffix, command, full) for a mismatch run.  nbdkit 1.32 itself
    often aborts ("connections.c: raw_send_socket: Assertion `sock >= 0'
    failed", also without this filter, e.g. with the error filter) when a
    multi-connection nbdcopy exits on an error with requests in flight, and
    then no report is made.  So a default nbdcopy run only checks the exit
    status and the completion error, and a serial nbdcopy run (one
    connection, one request) checks everything."""
    if not command.startswith("nbdcopy "):
        return [("", command, True)]
    return [("", command, False),
            (" (nbdcopy -C 1 -R 1)",
             command.replace("nbdcopy ", "nbdcopy -C 1 -R 1 ", 1), True)]


# --- blkhash-expect with copy tools ------------------------------------------


def test_target_side(tmp, good, paths, good_hex, bad_hex):
    """Copies into a memory target."""
    result = os.path.join(tmp, "target-sum")
    commands = {
        "qemu-img raw": 'qemu-img convert -n -f raw -O raw %s "$uri"',
        "qemu-img qcow2": 'qemu-img convert -n -f qcow2 -O raw %s "$uri"',
        "nbdcopy raw": 'nbdcopy %s "$uri"',
        "nbdcopy qcow2": 'nbdcopy -- [ qemu-nbd -r -f qcow2 %s ] "$uri"',
    }
    wrong = flip_hex(good_hex)
    for name, template in commands.items():
        fmt = name.split()[1]
        src = paths["src." + fmt]
        bad = paths["bad." + fmt]
        what = "target %s" % name
        if os.path.exists(result):
            os.unlink(result)
        p = nbdkit(["memory", "size=%d" % SIZE],
                   ["blkhash-expect=" + good_hex, "blkhash-file=" + result],
                   run=template % shlex.quote(src))
        last = expect_match(what + " match", p, good_hex, result)
        if last:
            check(last["size"] == str(SIZE), what + " match: size",
                  last["line"])

        for suffix, command, full in mismatch_runs(template):
            p = nbdkit(["memory", "size=%d" % SIZE],
                       ["blkhash-expect=" + good_hex],
                       run=command % shlex.quote(bad))
            expect_mismatch(what + " changed byte" + suffix, p, bad_hex,
                            good_hex, full=full)

            p = nbdkit(["memory", "size=%d" % SIZE],
                       ["blkhash-expect=" + wrong],
                       run=command % shlex.quote(src))
            expect_mismatch(what + " wrong value" + suffix, p, good_hex,
                            wrong, full=full)


def test_source_side(tmp, good, paths, good_hex, bad_hex):
    """Copies out of a file-plugin source."""
    out = os.path.join(tmp, "out.raw")
    result = os.path.join(tmp, "source-sum")
    wrong = flip_hex(good_hex)
    commands = {
        "qemu-img": 'qemu-img convert -f raw "$uri" -O raw %s',
        "nbdcopy": 'nbdcopy "$uri" %s',
    }
    for name, template in commands.items():
        what = "source file %s" % name
        run = template % shlex.quote(out)
        for path in (out, result):
            if os.path.exists(path):
                os.unlink(path)
        p = nbdkit(["file", paths["src.raw"]],
                   ["blkhash-expect=" + good_hex, "blkhash-file=" + result],
                   run=run)
        expect_match(what + " match", p, good_hex, result)
        check(os.path.exists(out) and read(out) == good,
              what + " match: the copy == source")

        for suffix, command, full in mismatch_runs(run):
            p = nbdkit(["file", paths["bad.raw"]],
                       ["blkhash-expect=" + good_hex], run=command)
            expect_mismatch(what + " changed byte" + suffix, p, bad_hex,
                            good_hex, full=full)

            p = nbdkit(["file", paths["src.raw"]],
                       ["blkhash-expect=" + wrong], run=command)
            expect_mismatch(what + " wrong value" + suffix, p, good_hex,
                            wrong, full=full)


def test_nbd_plugin(tmp, good, paths, good_hex, bad_hex):
    """The nbd plugin in front of qemu-nbd serving a qcow2: the export is
    the virtual disk, so the value is the reference over the raw bytes."""
    out = os.path.join(tmp, "nbd-out.raw")
    result = os.path.join(tmp, "nbd-sum")
    wrong = flip_hex(good_hex)
    pids = []
    try:
        good_sock, pid = start_qemu_nbd(tmp, "qemu-nbd-good",
                                        paths["src.qcow2"])
        pids.append(pid)
        bad_sock, pid = start_qemu_nbd(tmp, "qemu-nbd-bad",
                                       paths["bad.qcow2"])
        pids.append(pid)
        commands = {
            "qemu-img": 'qemu-img convert -f raw "$uri" -O raw %s',
            "nbdcopy": 'nbdcopy "$uri" %s',
        }
        for name, template in commands.items():
            what = "nbd plugin + qemu-nbd %s" % name
            run = template % shlex.quote(out)
            for path in (out, result):
                if os.path.exists(path):
                    os.unlink(path)
            p = nbdkit(["nbd", "socket=" + good_sock],
                       ["blkhash-expect=" + good_hex,
                        "blkhash-file=" + result], run=run)
            expect_match(what + " match", p, good_hex, result)
            check(os.path.exists(out) and read(out) == good,
                  what + " match: the copy == source")

            for suffix, command, full in mismatch_runs(run):
                p = nbdkit(["nbd", "socket=" + bad_sock],
                           ["blkhash-expect=" + good_hex], run=command)
                expect_mismatch(what + " changed byte" + suffix, p, bad_hex,
                                good_hex, full=full)

                p = nbdkit(["nbd", "socket=" + good_sock],
                           ["blkhash-expect=" + wrong], run=command)
                expect_mismatch(what + " wrong value" + suffix, p, good_hex,
                                wrong, full=full)
    finally:
        for pid in pids:
            stop_pid(pid)


def qcow2_host_offset(qcow2, virtual):
    """Where a virtual offset's data lives in the qcow2 file."""
    m = subprocess.run(["qemu-img", "map", "--output=json", qcow2],
                       capture_output=True, text=True, env=ENV, check=True)
    for e in json.loads(m.stdout):
        if e["start"] <= virtual < e["start"] + e["length"] and e["data"]:
            return e["offset"] + virtual - e["start"]
    raise ValueError("offset %d is not allocated" % virtual)


def unused_refcount_entry(qcow2_bytes):
    """The file offset of the last byte of the first refcount block: the
    refcount of a cluster far beyond the end of the file, so changing it
    changes nothing qemu-img reads."""
    cluster_bits, = struct.unpack(">I", qcow2_bytes[20:24])
    table, = struct.unpack(">Q", qcow2_bytes[48:56])
    refcount_order, = struct.unpack(">I", qcow2_bytes[96:100])
    block, = struct.unpack(">Q", qcow2_bytes[table:table + 8])
    cluster = 1 << cluster_bits
    entries = cluster * 8 >> refcount_order
    assert block and block % cluster == 0 and block + cluster <= len(
        qcow2_bytes), "no refcount block"
    assert len(qcow2_bytes) // cluster < entries - 1, "file too large"
    return block + cluster - 1


def test_curl_qcow2(tmp, good, paths):
    """The seed case: a published qcow2 file checked while qemu-img
    converts it from HTTP."""
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    qcow2 = read(paths["src.qcow2"])
    want = reference(qcow2)
    check(want != reference(good), "curl: the qcow2 file's checksum is not "
          "the raw image's")

    data_byte = qcow2_host_offset(paths["src.qcow2"], CHANGED)
    refcount_byte = unused_refcount_entry(qcow2)
    variants = {"src.qcow2": qcow2}
    for name, offset in (("bad-data.qcow2", data_byte),
                         ("bad-refcount.qcow2", refcount_byte)):
        content = bytearray(qcow2)
        content[offset] ^= 0x01
        variants[name] = bytes(content)
    for name, content in variants.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(content)
    # The refcount variant is still a good image with the same content.
    info = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw",
                           os.path.join(www, "bad-refcount.qcow2"),
                           paths["src.raw"]],
                          capture_output=True, text=True, env=ENV)
    check(info.returncode == 0, "curl: the changed refcount entry leaves "
          "the image content alone", info.stdout + info.stderr)

    log = os.path.join(tmp, "http.log")
    out = os.path.join(tmp, "curl-out.raw")
    result = os.path.join(tmp, "curl-sum")
    check_err = os.path.join(tmp, "check.err")
    convert = 'qemu-img convert -f qcow2 "$uri" -O raw %s' % shlex.quote(out)
    checked = ('%s && nbdinfo --list "$uri" >/dev/null 2>%s'
               % (convert, shlex.quote(check_err)))
    server = HttpServer(www, log)
    try:
        def run(name, expect, command, params=()):
            for path in (out, result, check_err, log):
                if os.path.exists(path):
                    os.unlink(path)
            return nbdkit(["curl", server.url(name), "protocols=http"],
                          ["blkhash-expect=" + expect, *params],
                          run=command)

        what = "curl qcow2 match"
        p = run("src.qcow2", want, checked, ["blkhash-file=" + result])
        last = expect_match(what, p, want, result)
        check(os.path.exists(out) and read(out) == good,
              what + ": converted image == raw source")
        if last:
            check(last["size"] == str(len(qcow2)), what + ": size is the "
                  "qcow2 file's", last["line"])
            check(int(last["read"]) > 0, what + ": the filter read what "
                  "qemu-img did not", last["line"])
        requests = read(log).decode().splitlines() \
            if os.path.exists(log) else []
        check(any(r.startswith("HEAD /src.qcow2 ") for r in requests),
              what + ": HEAD request", requests[:5])
        gets = [r for r in requests if r.startswith("GET ")]
        check(gets and all(r.endswith(" 206") and "bytes=" in r
                           for r in gets),
              what + ": every GET is a byte range (206)", requests[:20])

        for name, label in (("bad-data.qcow2", "changed data byte"),
                            ("bad-refcount.qcow2",
                             "changed unused refcount entry")):
            what = "curl qcow2 " + label
            p = run(name, want, checked)
            expect_mismatch(what, p, reference(variants[name]), want,
                            completion=False)
            check(os.path.exists(check_err) and
                  "nbdinfo" in read(check_err).decode(),
                  what + ": the check failed", tail(p.stderr))
            lines = p.stderr.splitlines()
            reports = [i for i, l in enumerate(lines)
                       if l.startswith("nbdkit: blkhash: ")]
            failed = [i for i, l in enumerate(lines)
                      if ": error: blkhash: " in l
                      and "verdict mismatch" in l
                      and reports and i > reports[-1]]
            check(len(failed) >= 1, what + ": the check's error says "
                  "verdict mismatch, after the report", tail(p.stderr))
            if name == "bad-refcount.qcow2":
                check(os.path.exists(out) and read(out) == good,
                      what + ": qemu-img saw nothing wrong (copy == raw "
                      "source)")

        # Without the check connection nobody is told, but the log is.
        what = "curl qcow2 no check connection"
        p = run("bad-refcount.qcow2", want, convert)
        reports = reports_of(p.stderr)
        check(reports and reports[-1].get("expect") == "MISMATCH"
              and reports[-1].get("expected") == want,
              what + ": report says MISMATCH", tail(p.stderr))

        what = "curl qcow2 wrong value"
        wrong = flip_hex(want)
        p = run("src.qcow2", wrong, checked)
        expect_mismatch(what, p, want, wrong, completion=False)
        check(os.path.exists(out) and read(out) == good,
              what + ": converted image == raw source")
    finally:
        server.stop()


# --- Which request fails: a Python NBD client ----------------------------------

CLIENT = r'''
import json, random, sys, nbd
mode, sock, size, seed, out, path = sys.argv[1:7]
size, seed = int(size), int(seed)
B = 65536
steps = []

def step(name, fn):
    try:
        fn()
        steps.append([name, "ok"])
    except nbd.Error as e:
        err = e.errno
        if isinstance(err, int):
            import errno as E
            err = E.errorcode.get(err, str(err))
        steps.append([name, err or "error"])

h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_unix(sock)
data = random.Random(seed).randbytes(size)
starts = list(range(0, size, B))
if mode == "write":
    for s in starts[:-1]:
        step("write", lambda: h.pwrite(data[s:s + B], s))
    step("flush before", h.flush)
    s = starts[-1]
    step("last write", lambda: h.pwrite(data[s:], s))
elif mode == "zero":
    half = starts[len(starts) // 2]
    step("write", lambda: h.pwrite(data[:half], 0))
    step("flush before", h.flush)
    step("last zero", lambda: h.zero(size - half, half))
elif mode == "read":
    for s in starts[:-1]:
        step("read", lambda: h.pread(min(B, size - s), s))
    step("flush before", h.flush)
    s = starts[-1]
    step("last read", lambda: h.pread(size - s, s))
elif mode == "status":
    step("flush before", h.flush)
    step("last block status",
         lambda: h.block_status(size, 0, lambda *a: 0))
elif mode == "verify":
    for s in range(0, size, 1 << 20):
        step("write", lambda: h.pwrite(data[s:s + (1 << 20)], s))
    step("flush before", h.flush)
    # Behind the filter's back, while still connected.
    with open(path, "r+b") as f:
        f.seek(size // 3)
        f.write(bytes([data[size // 3] ^ 0xff]))
if mode != "verify":
    step("flush after", h.flush)
    step("flush again", h.flush)
    step("read after", lambda: h.pread(100, 0))
h.shutdown()
json.dump(steps, open(out, "w"))
'''


def summarize(steps):
    """Collapses runs of the same step: [[name, [results...]], ...]."""
    out = []
    for name, res in steps:
        if out and out[-1][0] == name:
            out[-1][1].add(res)
        else:
            out.append([name, {res}])
    return [[n, sorted(r)] for n, r in out]


def test_failing_request(tmp):
    client = os.path.join(tmp, "client.py")
    with open(client, "w") as f:
        f.write(CLIENT)
    size = MIB + 1000
    seed = 99
    data = random.Random(seed).randbytes(size)
    half = list(range(0, size, 65536))[len(range(0, size, 65536)) // 2]
    file_src = os.path.join(tmp, "client-src.raw")
    with open(file_src, "wb") as f:
        f.write(data)
    cases = [
        ("write", ["memory", "size=%d" % size], reference(data), "write",
         "last write"),
        ("zero", ["memory", "size=%d" % size],
         reference(data[:half] + bytes(size - half)), "write", "last zero"),
        ("read", ["file", file_src], reference(data), "read", "last read"),
        ("status", ["memory", "size=%d" % size], reference(bytes(size)),
         None, "last block status"),
    ]
    for mode, plugin, want, bulk, last in cases:
        for right in (True, False):
            expect = want if right else flip_hex(want)
            what = "client %s %s" % (mode, "match" if right else "mismatch")
            out = os.path.join(tmp, "client-%s-%d.json" % (mode, right))
            p = nbdkit(plugin, ["blkhash-expect=" + expect],
                       run="/usr/bin/python3 %s %s \"$unixsocket\" %d %d %s "
                       "none" % (shlex.quote(client), mode, size, seed,
                                 shlex.quote(out)))
            if not check(p.returncode == 0 and os.path.exists(out),
                         what + ": client ran", tail(p.stderr)):
                continue
            steps = summarize(json.load(open(out)))
            failed = "EIO"
            want_steps = ([[bulk, ["ok"]]] if bulk else []) + [
                ["flush before", ["ok"]],
                [last, ["ok" if right else failed]],
                ["flush after", ["ok" if right else failed]],
                ["flush again", ["ok" if right else failed]],
                ["read after", ["ok"]]]
            check(steps == want_steps, what + ": exactly the completing "
                  "request and later flushes fail", steps)
            if right:
                expect_match(what, p, want)
            else:
                # The client exits 0 (it handled the errors): only the log.
                check(completion_re(want, expect).search(p.stderr)
                      is not None, what + ": completion MISMATCH logged",
                      tail(p.stderr))
                reports = reports_of(p.stderr)
                check(reports and reports[-1]["digest"] == want
                      and reports[-1].get("expect") == "MISMATCH"
                      and reports[-1].get("expected") == expect,
                      what + ": report expect=MISMATCH", tail(p.stderr))
                check(re.search(r": error: blkhash: export \"\": flush "
                                r"refused: checksum MISMATCH", p.stderr)
                      is not None, what + ": refused flush logged",
                      tail(p.stderr))


# --- blkhash-verify ------------------------------------------------------------


def test_verify(tmp, good, paths, good_hex):
    target = os.path.join(tmp, "verify-target.img")
    result = os.path.join(tmp, "verify-sum")
    commands = {
        "nbdcopy": 'nbdcopy %s "$uri"' % shlex.quote(paths["src.raw"]),
        "qemu-img": 'qemu-img convert -n -f qcow2 -O raw %s "$uri"'
                    % shlex.quote(paths["src.qcow2"]),
    }
    for name, run in commands.items():
        for with_expect in (False, True):
            what = "verify %s%s" % (name, " + expect" if with_expect else "")
            for path in (target, result):
                if os.path.exists(path):
                    os.unlink(path)
            with open(target, "wb") as f:
                f.truncate(SIZE)
            params = ["blkhash-verify=true", "blkhash-file=" + result]
            if with_expect:
                params.append("blkhash-expect=" + good_hex)
            p = nbdkit(["file", target], params, run=run)
            check(p.returncode == 0, what + ": exit status", tail(p.stderr))
            check(reference(target) == good_hex,
                  what + ": target file == source")
            reports = reports_of(p.stderr)
            if not check(len(reports) >= 1, what + ": a report",
                         tail(p.stderr)):
                continue
            last = reports[-1]
            check(last["digest"] == good_hex, what + ": report == reference",
                  last["line"])
            check(last.get("verify") == "match"
                  and last.get("readback") == good_hex,
                  what + ": verify=match readback == reference(target)",
                  last["line"])
            check(int(last.get("verify-read", "0")) > 0,
                  what + ": verify-read > 0", last["line"])
            check(re.search(r" verify=match readback=[0-9a-f]{64} "
                            r"verify-read=[0-9]+ verdict=match$",
                            last["line"])
                  is not None, what + ": line ends with the verify fields",
                  last["line"])
            if with_expect:
                check(last.get("expect") == "verified",
                      what + ": expect=verified too", last["line"])
            check("MISMATCH" not in p.stderr, what + ": no MISMATCH",
                  tail(p.stderr))
            check(os.path.exists(result) and read(result) ==
                  (good_hex + "\n").encode(), what + ": result file")

    # Changed behind the filter's back.
    client = os.path.join(tmp, "verify-client.py")
    with open(client, "w") as f:
        f.write(CLIENT)
    size = 3000000
    seed = 7
    written = random.Random(seed).randbytes(size)
    disk = os.path.join(tmp, "verify-disk.img")
    with open(disk, "wb") as f:
        f.truncate(size)
    out = os.path.join(tmp, "verify-client.json")
    check_err = os.path.join(tmp, "verify-check.err")
    p = nbdkit(["file", disk], ["blkhash-verify=true"],
               run="/usr/bin/python3 %s verify \"$unixsocket\" %d %d %s %s "
               "&& nbdinfo --list \"$uri\" >/dev/null 2>%s; rc=$?; "
               "nbdinfo --no-content \"$uri\" >/dev/null && echo PLAIN_OK; "
               "exit $rc"
               % (shlex.quote(client), size, seed, shlex.quote(out),
                  shlex.quote(disk), shlex.quote(check_err)))
    what = "verify changed behind the filter"
    steps = summarize(json.load(open(out))) if os.path.exists(out) else None
    check(steps == [["write", ["ok"]], ["flush before", ["ok"]]],
          what + ": the client wrote everything", steps)
    changed = read(disk)
    check(changed != written and len(changed) == size
          and sum(a != b for a, b in zip(changed[size // 3 - 8:size // 3 + 8],
                                         written[size // 3 - 8:
                                                 size // 3 + 8])) == 1,
          what + ": one byte of the file was changed")
    want_hex, readback_hex = reference(written), reference(changed)
    check(want_hex != readback_hex, what + ": the references differ")
    check(p.returncode != 0, what + ": the check fails", tail(p.stderr))
    reports = reports_of(p.stderr)
    if check(len(reports) == 1, what + ": one report", tail(p.stderr)):
        r = reports[0]
        check(r["digest"] == want_hex, what + ": checksum == reference of "
              "what was written", r["line"])
        check(r.get("verify") == "MISMATCH"
              and r.get("readback") == readback_hex,
              what + ": verify=MISMATCH readback == reference(changed "
              "file)", r["line"])
        check(r.get("verify-read") == str(size),
              what + ": verify-read == size (all data)", r["line"])
        check(r["line"].endswith(" verify=MISMATCH readback=%s "
                                 "verify-read=%d verdict=mismatch"
                                 % (readback_hex, size)),
              what + ": line ends with the verify fields", r["line"])
    check(re.search(r": error: .*MISMATCH", p.stderr) is not None,
          what + ": an nbdkit error line with MISMATCH", tail(p.stderr))
    check(os.path.exists(check_err) and read(check_err),
          what + ": the check failed", tail(p.stderr))
    check("PLAIN_OK" in p.stdout, what + ": a later plain connection is "
          "not refused", tail(p.stderr))


# --- Values of blkhash-expect ----------------------------------------------------


def test_values(tmp, good, paths, good_hex):
    src = paths["src.raw"]
    xxh = reference(good, "xxh128")
    check(len(xxh) == 32, "xxh128 reference has 32 hex digits")
    bad_values = [
        ("sha256 62 digits", [], good_hex[:-2]),
        ("sha256 63 digits", [], good_hex[:-1]),
        ("sha256 66 digits", [], good_hex + "00"),
        ("sha256 given 32 digits", [], xxh),
        ("xxh128 given 64 digits", ["blkhash-digest=xxh128"], good_hex),
        ("xxh128 31 digits", ["blkhash-digest=xxh128"], xxh[:-1]),
        ("non-hex g", [], good_hex[:-1] + "g"),
        ("non-hex 0x", [], "0x" + good_hex[2:]),
        ("non-hex space", [], good_hex[:10] + " " + good_hex[11:]),
        ("empty", [], ""),
    ]
    for what, params, value in bad_values:
        what = "bad value " + what
        p = nbdkit(["file", src], params + ["blkhash-expect=" + value],
                   run="echo STARTED", timeout=60)
        check(p.returncode != 0, what + ": non-zero exit", p.returncode)
        check("STARTED" not in p.stdout, what + ": --run never ran")
        check(reports_of(p.stderr) == [], what + ": no report", p.stderr)
        check(any("error" in l and "blkhash-expect" in l
                  for l in p.stderr.splitlines()),
              what + ": an error line naming blkhash-expect", p.stderr)

    for what, params, value, want in (
            ("upper case", [], good_hex.upper(), good_hex),
            ("mixed case", [], good_hex[:32].upper() + good_hex[32:],
             good_hex),
            ("xxh128", ["blkhash-digest=xxh128"], xxh, xxh),
            ("xxh128 upper case", ["blkhash-digest=xxh128"], xxh.upper(),
             xxh)):
        p = nbdkit(["file", src], params + ["blkhash-expect=" + value],
                   run='nbdcopy "$uri" null:')
        expect_match("value " + what, p, want)

    # An upper case wrong value is reported in lower case.
    wrong = flip_hex(good_hex)
    p = nbdkit(["file", src], ["blkhash-expect=" + wrong.upper()],
               run='nbdcopy -C 1 -R 1 "$uri" null:')
    expect_mismatch("value upper case wrong", p, good_hex, wrong)
    wrong = flip_hex(xxh)
    p = nbdkit(["file", src], ["blkhash-digest=xxh128",
                               "blkhash-expect=" + wrong],
               run='nbdcopy -C 1 -R 1 "$uri" null:')
    expect_mismatch("value xxh128 wrong", p, xxh, wrong, label="xxh128/64K")


def main():
    start = time.time()
    with tempdir() as tmp:
        good, bad, paths = make_sources(tmp)
        good_hex, bad_hex = reference(good), reference(bad)
        check(good_hex != bad_hex, "the changed byte changes the value")
        check(reference(paths["src.raw"]) == good_hex
              and reference(paths["bad.raw"]) == bad_hex,
              "reference over the files == over the bytes")
        test_values(tmp, good, paths, good_hex)
        test_failing_request(tmp)
        test_target_side(tmp, good, paths, good_hex, bad_hex)
        test_source_side(tmp, good, paths, good_hex, bad_hex)
        test_nbd_plugin(tmp, good, paths, good_hex, bad_hex)
        test_curl_qcow2(tmp, good, paths)
        test_verify(tmp, good, paths, good_hex)
    print("%.1f s" % (time.time() - start))
    finish()


if __name__ == "__main__":
    main()
