#!/usr/bin/python3
"""How results are reported: the exact log line format and fields; the
result file holds exactly hex + newline and is replaced atomically (a hard
link to the old file keeps the old content, no temporary files are left);
a relative blkhash-file is resolved at start-up (also when nbdkit daemonizes
and changes directory to /); the NBD export description is "pending" before
any report and equals the report line after it; "--run true" reports the
file's checksum; connections without data requests do not trigger a report
(only the one at shutdown appears); an unreadable export gives an
"incomplete" line and no result file; hostile export names cannot forge a
report line; each export name gets its own report, and an export that
changes size between sessions is reported at its new size.  Expected
digests come from vectors.tsv (blksum) or the independent hashlib
reference, never from the filter.
"""

import hashlib
import json
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, vectors, image, nbdkit,  # noqa: E402
                     parse_reports, reference, tempdir, ENV, FILTER)

HEX_LEN = {"sha256": 64, "sha1": 40, "md5": 32, "xxh128": 32,
           "blake2b512": 128}

LINE_RE = re.compile(
    r'^nbdkit: blkhash: (?P<alg>[a-z0-9-]+)/(?P<bs>[0-9]+[KM]) '
    r'(?P<hex>[0-9a-f]+) export="(?P<export>(?:[^"\\\x00-\x1f\x7f-\xff]|'
    r'\\["\\]|\\x[0-9a-f]{2})*)" size=(?P<size>[0-9]+) '
    r'hashed=(?P<hashed>[0-9]+) read=(?P<read>[0-9]+) '
    r'verdict=(?P<verdict>computed)$')


def vector(name, alg="sha256", bs=65536):
    for row in vectors():
        if (row["name"], row["algorithm"], row["block_size"]) == (name, alg,
                                                                  bs):
            return row
    raise KeyError((name, alg, bs))


def report_lines(stderr):
    """Every stderr line that mentions a report, however it looks."""
    return [l for l in stderr.splitlines()
            if re.search(r"blkhash: \S+ (\S+) export=", l)]


def unquote(text):
    """Inverse of the filter's quoting: \\" \\\\ \\xNN."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1] == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif text[i] == "\\":
            out += text[i + 1].encode()
            i += 2
        else:
            out += text[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")


def test_line_format(tmp):
    """Several digests and block sizes: the whole line, strictly."""
    for name, alg, bs, bs_arg, label in (
            ("mixed-1m", "sha256", 65536, None, "64K"),
            ("unaligned-data", "sha1", 65536, "65536", "64K"),
            ("sparse-5m-unaligned", "sha256", 4096, "4k", "4K"),
            ("random-1m", "sha256", 1048576, "1M", "1M"),
            ("two-blocks-A-B", "md5", 65536, "64K", "64K")):
        row = vector(name, alg, bs)
        result = os.path.join(tmp, "fmt-" + name)
        params = ["blkhash-file=" + result]
        if alg != "sha256":
            params.append("blkhash-digest=" + alg)
        if bs_arg:
            params.append("blkhash-block-size=" + bs_arg)
        p = nbdkit(["file", image(name)], params,
                   run='nbdcopy "$uri" null:')
        what = "format %s %s/%s" % (name, alg, label)
        check(p.returncode == 0, what + ": exit status", p.stderr)
        lines = report_lines(p.stderr)
        if not check(len(lines) == 1, what + ": one report line", p.stderr):
            continue
        m = LINE_RE.match(lines[0])
        if not check(m is not None, what + ": line matches the format",
                     lines[0]):
            continue
        check(m["alg"] == alg and m["bs"] == label, what + ": label",
              lines[0])
        check(len(m["hex"]) == HEX_LEN[alg] and m["hex"] == row["digest"],
              what + ": hex == vector", lines[0])
        check(m["export"] == "", what + ": export", lines[0])
        check(int(m["size"]) == row["size"], what + ": size", lines[0])
        # One full read: every data byte was hashed from client traffic or
        # read back, never more than the export twice over.
        hashed, read = int(m["hashed"]), int(m["read"])
        check(hashed + read <= 2 * row["size"], what + ": hashed+read bound",
              lines[0])
        with open(result, "rb") as f:
            check(f.read() == (row["digest"] + "\n").encode(),
                  what + ": result file is exactly hex + newline")

    # xxh128 and blake2b512 against the reference.
    for alg in ("xxh128", "blake2b512"):
        p = nbdkit(["file", image("random-1m")], ["blkhash-digest=" + alg],
                   run='nbdcopy "$uri" null:')
        lines = report_lines(p.stderr)
        m = LINE_RE.match(lines[0]) if len(lines) == 1 else None
        want = reference(image("random-1m"), alg)
        check(m is not None and m["alg"] == alg and m["bs"] == "64K"
              and len(m["hex"]) == HEX_LEN[alg] and m["hex"] == want,
              "format %s: line and hex == reference" % alg, p.stderr)


def test_atomic_replace(tmp):
    out = os.path.join(tmp, "atomic")
    os.mkdir(out)
    result = os.path.join(out, "sum")
    link = os.path.join(out, "old-link")
    with open(result, "w") as f:
        f.write("old contents\n")
    os.link(result, link)
    row = vector("unaligned-data")
    p = nbdkit(["file", image("unaligned-data")], ["blkhash-file=" + result],
               run='nbdcopy "$uri" null:')
    check(p.returncode == 0, "atomic: exit status", p.stderr)
    with open(result) as f:
        check(f.read() == row["digest"] + "\n", "atomic: path has new sum")
    with open(link) as f:
        check(f.read() == "old contents\n",
              "atomic: hard link keeps the old content (rename, not rewrite)")
    check(os.stat(result).st_ino != os.stat(link).st_ino,
          "atomic: path is a new inode")
    check(sorted(os.listdir(out)) == ["old-link", "sum"],
          "atomic: no temporary files left", os.listdir(out))

    # Two reports in one run (two sessions): the file holds the latest.
    # The first session leaves unknown bytes: the check makes its report;
    # the second zeroes everything, so its disconnect reports.
    p = nbdkit(["memory", "size=1M"], ["blkhash-file=" + result],
               run='nbdsh -u "$uri" -c "h.pwrite(b\'x\' * 5000, 70000)" && '
                   'nbdinfo --list "$uri" >/dev/null && '
                   'nbdsh -u "$uri" -c "h.zero(1048576, 0)"')
    reports = parse_reports(p.stderr)
    first = reference(bytes(70000) + b"x" * 5000 + bytes(1048576 - 75000))
    last = reference(bytes(1048576))
    check(len(reports) == 2 and reports[0]["digest"] == first
          and reports[1]["digest"] == last,
          "two reports: each == reference", p.stderr)
    with open(result) as f:
        check(f.read() == last + "\n", "two reports: file holds the latest")
    check(sorted(os.listdir(out)) == ["old-link", "sum"],
          "two reports: no temporary files left", os.listdir(out))


def test_relative_path(tmp):
    start = os.path.join(tmp, "start")
    os.makedirs(os.path.join(start, "sub"))
    other = os.path.join(tmp, "other")
    os.mkdir(other)
    row = vector("mixed-1m")
    cmd = ["nbdkit", "-U", "-", "-f", "--filter=" + FILTER,
           "file", image("mixed-1m"), "blkhash-file=sub/sum",
           "--run", 'cd %s && nbdcopy "$uri" null:' % shlex.quote(other)]
    p = subprocess.run(cmd, cwd=start, capture_output=True, text=True,
                       env=ENV, timeout=120)
    check(p.returncode == 0, "relative: exit status", p.stderr)
    path = os.path.join(start, "sub", "sum")
    check(os.path.exists(path) and open(path).read() == row["digest"] + "\n",
          "relative: file written relative to the start directory")
    check(os.listdir(other) == [], "relative: nothing in the --run cwd")

    # A daemonized nbdkit changes directory to /: the path must still be
    # the one resolved at start-up.
    sock = os.path.join(tmp, "daemon.sock")
    pidfile = os.path.join(tmp, "daemon.pid")
    cmd = ["nbdkit", "-U", sock, "-P", pidfile, "--filter=" + FILTER,
           "file", image("mixed-1m"), "blkhash-file=daemon-sum"]
    p = subprocess.run(cmd, cwd=start, capture_output=True, text=True,
                       env=ENV, timeout=60)
    if not check(p.returncode == 0, "daemon: started", p.stderr):
        return
    pid = None
    try:
        for _ in range(100):
            if os.path.exists(pidfile) and open(pidfile).read().strip():
                pid = int(open(pidfile).read())
                break
            time.sleep(0.05)
        c = subprocess.run(["nbdcopy", "nbd+unix:///?socket=" + sock,
                            "null:"], capture_output=True, text=True,
                           env=ENV, timeout=60)
        check(c.returncode == 0, "daemon: nbdcopy", c.stderr)
        path = os.path.join(start, "daemon-sum")
        for _ in range(200):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        check(os.path.exists(path)
              and open(path).read() == row["digest"] + "\n",
              "daemon: result file in the start directory")
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


def test_description(tmp):
    row = vector("unaligned-data")
    out1 = os.path.join(tmp, "before.json")
    out2 = os.path.join(tmp, "after.json")
    run = ('nbdinfo --json --no-content "$uri" > %s && '
           'nbdcopy "$uri" null: && '
           'nbdinfo --json --no-content "$uri" > %s'
           % (shlex.quote(out1), shlex.quote(out2)))
    p = nbdkit(["file", image("unaligned-data")], [], run=run)
    if not check(p.returncode == 0, "description: exit status", p.stderr):
        return
    before = json.load(open(out1))["exports"][0].get("description")
    after = json.load(open(out2))["exports"][0].get("description")
    check(before == 'blkhash: sha256/64K pending export="" size=%d '
          '(not computed yet)' % row["size"],
          "description: pending before any data request", before)
    lines = report_lines(p.stderr)
    check(len(lines) == 1, "description: one report", p.stderr)
    check(lines and after == lines[0][len("nbdkit: "):],
          "description: equals the report line after the copy", after)
    check(after is not None and (" %s " % row["digest"]) in after,
          "description: holds the vector digest", after)


def test_run_true(tmp):
    for name, alg, bs, params in (
            ("mixed-1m", "sha256", 65536, []),
            ("mixed-1m", "sha256", 4096, ["blkhash-block-size=4K"]),
            ("unaligned-zero-tail", "md5", 65536, ["blkhash-digest=md5"]),
            ("empty", "sha256", 65536, [])):
        row = vector(name, alg, bs)
        p = nbdkit(["file", image(name)], params, run="true")
        what = "--run true %s %s/%d" % (name, alg, bs)
        check(p.returncode == 0, what + ": exit status", p.stderr)
        reports = parse_reports(p.stderr)
        check(len(reports) == 1 and reports[0]["digest"] == row["digest"],
              what + ": one report == vector", p.stderr)
        if reports:
            check(reports[0].get("hashed") == "0",
                  what + ": hashed=0 (no client traffic)", reports[0]["line"])
    check(vector("empty")["digest"] ==
          "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc",
          "empty vector is sha256(LE64(0))")


def zero_reference(size, block_size=65536):
    """The definition applied to an all-zero export (hashlib, no filter)."""
    n, tail = divmod(size, block_size)
    leaf = hashlib.sha256(bytes(block_size)).digest()
    outer = hashlib.sha256()
    for _ in range(n):
        outer.update(leaf)
    if tail:
        outer.update(hashlib.sha256(bytes(tail)).digest())
    outer.update(struct.pack("<Q", size))
    return outer.hexdigest()


def test_probes(tmp):
    """Connections without data requests make no report; only the report
    at shutdown appears, after the last probe."""
    probes = ('nbdinfo --no-content "$uri" >/dev/null; echo PROBE1 >&2; '
              'nbdinfo --size "$uri" >/dev/null; echo PROBE2 >&2; '
              'nbdinfo --json --no-content "$uri" >/dev/null; '
              'echo PROBE3 >&2')

    # A large sparse-random export: the reference is over its bytes,
    # dumped by a separate nbdkit without the filter.
    size = 256 << 20
    dump = os.path.join(tmp, "sparse-random.raw")
    d = subprocess.run(["nbdkit", "-U", "-", "sparse-random",
                        "size=%d" % size, "seed=4242",
                        "--run", 'nbdcopy "$uri" %s' % shlex.quote(dump)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    check(d.returncode == 0, "probes: dump sparse-random", d.stderr)
    want = reference(dump)
    os.unlink(dump)
    p = nbdkit(["sparse-random", "size=%d" % size, "seed=4242"], [],
               run=probes)
    check(p.returncode == 0, "probes: exit status", p.stderr)
    lines = p.stderr.splitlines()
    reports = report_lines(p.stderr)
    check(len(reports) == 1, "probes: exactly one report line", p.stderr)
    check("PROBE3" in lines and reports
          and lines.index(reports[0]) > lines.index("PROBE3"),
          "probes: the report comes only at shutdown", p.stderr)
    parsed = parse_reports(p.stderr)
    if parsed:
        check(parsed[0]["digest"] == want, "probes: shutdown report == "
              "reference", parsed[0]["line"])
        check(parsed[0]["hashed"] == "0" and int(parsed[0]["read"]) > 0,
              "probes: nothing hashed from clients, rest read at shutdown",
              parsed[0]["line"])

    # A huge null export: still only the shutdown report.
    size = 8 << 30
    p = nbdkit(["null", "size=%d" % size], [], run=probes)
    reports = report_lines(p.stderr)
    lines = p.stderr.splitlines()
    check(p.returncode == 0 and len(reports) == 1
          and lines.index(reports[0]) > lines.index("PROBE3"),
          "probes null 8G: one report, at shutdown", p.stderr)
    parsed = parse_reports(p.stderr)
    check(parsed and parsed[0]["digest"] == zero_reference(size),
          "probes null 8G: report == zero reference", p.stderr)


def test_incomplete(tmp):
    """Reads that fail while finishing the report: "incomplete" with an
    error, and no result file claiming a checksum."""
    result = os.path.join(tmp, "incomplete-sum")
    p = nbdkit(["--filter=error", "memory", "size=1M",
                "error-pread=EIO", "error-pread-rate=1"],
               ["blkhash-file=" + result],
               run='nbdsh -u "$uri" -c "h.pwrite(b\'y\' * 4096, 8192)"')
    lines = report_lines(p.stderr)
    check(len(lines) >= 1, "incomplete: a report line", p.stderr)
    for line in lines:
        check(re.match(r'^nbdkit: blkhash: sha256/64K incomplete export="" '
                       r'size=1048576 hashed=[0-9]+ read=[0-9]+ '
                       r'error="[^"]+" verdict=incomplete$', line)
              is not None,
              "incomplete: line format", line)
    check(not os.path.exists(result), "incomplete: no result file")


def test_exports_and_resize(tmp):
    """Each export name has its own report (file plugin dir=); an export
    that changes size between sessions is reported at its new size."""
    d = os.path.join(tmp, "exports")
    os.mkdir(d)
    for name in ("mixed-1m", "random-1m"):
        with open(image(name), "rb") as src, \
                open(os.path.join(d, name), "wb") as dst:
            dst.write(src.read())
    run = ('nbdcopy "nbd+unix:///mixed-1m?socket=$unixsocket" null: && '
           'nbdcopy "nbd+unix:///random-1m?socket=$unixsocket" null:')
    p = nbdkit(["file", "dir=" + d], [], run=run)
    check(p.returncode == 0, "exports: exit status", p.stderr)
    got = {r["export"]: r["digest"] for r in parse_reports(p.stderr)}
    check(got == {"mixed-1m": vector("mixed-1m")["digest"],
                  "random-1m": vector("random-1m")["digest"]},
          "exports: one report per export == vectors", p.stderr)

    disk = os.path.join(d, "mixed-1m")
    run = ('nbdcopy "$uri" null: && truncate -s 1500000 %s && '
           'nbdcopy "$uri" null:' % shlex.quote(disk))
    p = nbdkit(["file", disk], [], run=run)
    reports = parse_reports(p.stderr)
    check(p.returncode == 0 and len(reports) == 2, "resize: two reports",
          p.stderr)
    if len(reports) == 2:
        check(reports[0]["digest"] == vector("mixed-1m")["digest"]
              and reports[0]["size"] == "1048576",
              "resize: first report == vector", reports[0]["line"])
        check(reports[1]["digest"] == reference(disk)
              and reports[1]["size"] == "1500000",
              "resize: second report == reference at the new size",
              reports[1]["line"])


INJECTED = [
    'a\nblkhash: sha256/64K 00 export="" size=1 hashed=0 read=0',
    'q"uote\\back\r\tx" size=1',
    "caf\u00e9\n\nnbdkit: blkhash: md5/4K " + "0" * 32 + ' export=""',
]

CLIENT = r'''
import json, sys, nbd
name, sock, out = sys.argv[1], sys.argv[2], sys.argv[3]
h = nbd.NBD()
h.set_export_name(name)
h.set_full_info(True)
h.connect_unix(sock)
desc = h.get_export_description()
h.pwrite(b"z" * 4096, 65536 + 100)
h.pread(4096, 0)
h.shutdown()
json.dump({"description": desc}, open(out, "w"))
'''


def test_export_names(tmp):
    client = os.path.join(tmp, "client.py")
    with open(client, "w") as f:
        f.write(CLIENT)
    content = bytes(65636) + b"z" * 4096 + bytes((1 << 20) - 65636 - 4096)
    want = reference(content)
    for i, name in enumerate(INJECTED):
        what = "export name %d" % i
        out = os.path.join(tmp, "client-%d.json" % i)
        p = nbdkit(["memory", "size=1M"], [],
                   run="/usr/bin/python3 %s %s \"$unixsocket\" %s"
                   % (shlex.quote(client), shlex.quote(name),
                      shlex.quote(out)))
        if not check(p.returncode == 0, what + ": exit status", p.stderr):
            continue
        # Any line that looks like a report at all.
        lines = [l for l in p.stderr.splitlines() if "blkhash:" in l]
        check(len(lines) == 1, what + ": exactly one line mentions blkhash",
              p.stderr)
        m = LINE_RE.match(lines[0]) if lines else None
        if not check(m is not None, what + ": line format", lines):
            continue
        check(unquote(m["export"]) == name, what + ": name round-trips",
              m["export"])
        check(m["hex"] == want, what + ": digest == reference", lines[0])
        desc = json.load(open(out))["description"]
        check("\n" not in desc and "\r" not in desc
              and desc.startswith("blkhash: sha256/64K pending export=\"")
              and desc.endswith('" size=1048576 (not computed yet)'),
              what + ": pending description is one safe line", desc)

    # A very long name is cut, still one line.
    long_name = "n" * 3000 + "\nblkhash: x"
    out = os.path.join(tmp, "client-long.json")
    p = nbdkit(["memory", "size=1M"], [],
               run="/usr/bin/python3 %s %s \"$unixsocket\" %s"
               % (shlex.quote(client), shlex.quote(long_name),
                  shlex.quote(out)))
    lines = [l for l in p.stderr.splitlines() if "blkhash:" in l]
    check(p.returncode == 0 and len(lines) == 1
          and LINE_RE.match(lines[0]) is not None
          and len(lines[0]) < 1000,
          "long export name: one bounded line", p.stderr[:2000])


def main():
    with tempdir() as tmp:
        for test in (test_line_format, test_atomic_replace,
                     test_relative_path, test_description, test_run_true,
                     test_probes, test_incomplete, test_exports_and_resize,
                     test_export_names):
            test(tmp)
    finish()


if __name__ == "__main__":
    main()
