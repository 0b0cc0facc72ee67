#!/usr/bin/python3
"""The verdict a script can trust (issue 14): the check idiom, incomplete
reports, the verdict field, result file formats and logging.

Run: meson test -C build verdict --print-errorlogs
By hand, 100 runs each way under two busy loops:
     BLKHASH_CHECK_RUNS=100 BLKHASH_CHECK_HOGS=2 meson test -C build verdict

Proves:
  1. The check idiom, a --run command ending with `&& nbdinfo --list
     "$uri"`, makes nbdkit exit non-zero with a wrong blkhash-expect and
     zero with the right one, in every flow, repeated: copies into the
     file plugin (qemu-img convert -n, qemu-img convert -n -W, nbdcopy);
     a qcow2 *file* read by `qemu-img convert -f qcow2 "$uri" -O raw`
     through the file plugin and through the curl plugin (a loopback HTTP
     server); the guest view of a qcow2 through qemu-nbd and the nbd
     plugin; an existing image with no copy at all (`--run 'nbdinfo
     --list "$uri"'`).  The qcow2-file flows, where the check connection
     used to race with the copy's disconnect, run BLKHASH_CHECK_RUNS times
     each way (default 20) while BLKHASH_CHECK_HOGS busy loops (default 1)
     load the CPU; the curl flow max(3, RUNS / 2) times, the others
     max(3, RUNS / 4) times.  With the right value the report says
     verdict=match and equals the hashlib reference, and the copy equals
     the source; with a wrong value the check (where the copy itself
     succeeds) logs a "blkhash: ... verdict" error.
  2. Incomplete is failure: a flaky eval plugin fails reads in a range the
     client never reads (the last MiB of a qcow2 file, past the clusters
     qemu-img reads; the end of a raw image a client reads only the start
     of).  The copy succeeds, but with blkhash-expect (the right value)
     and without any expectation the check fails, and the report says
     incomplete ... verdict=incomplete.  The same plugin without the
     failing range passes (verdict=computed, value == reference).
  10. blkhash-file-format=hex|sum|json: the file's contents, checked
     against the reference (json parsed: algorithm, block_size, checksum,
     size, export, verdict, expected, hashed, read); sum names the export
     ("-" for ""); a bad format stops nbdkit at start-up naming the
     parameter.  Digest names are normalised: SHA256, sha-256 and SHA2-256
     report sha256/64K in the line and "sha256" in json.
  11. The verdict field: computed without expectations, match and mismatch
     with blkhash-expect, in the report line, in the export description
     (nbdinfo --list --json after a passing check; nbdinfo --json
     --no-content after a failing one) and in the json result file.
  9. Logging follows nbdkit's --log: --log=null prints no report line (the
     result file proves the report was made); -f --log=syslog prints none
     on stderr and sends it to syslog with facility daemon; the default
     foreground prints it on stderr; a background nbdkit (no -f) sends it
     to syslog.  syslog is captured through a private /dev/log in a mount
     namespace of its own (unshare -m), so the machine's /dev is never
     touched; without unshare or root only the stderr half runs.

Every expected value is the hashlib reference (harness.reference) of
bytes made here with os.urandom, never the filter's own output.
"""

import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, run_tests, flip_hex, parse_reports,  # noqa: E402
                     read, reference, run_nbdkit, start_qemu_nbd, stop_pid,
                     wait_for_pid, ENV, FILTER, HttpServer)

MIB = 1 << 20
SIZE = 4 * MIB + 1536          # the last 64K block is short
CHECK = ' && nbdinfo --list "$uri"'
RUNS = int(os.environ.get("BLKHASH_CHECK_RUNS", "20"))
HOGS = int(os.environ.get("BLKHASH_CHECK_HOGS", "1"))
OTHER_RUNS = max(3, RUNS // 4)
# "nbdkit: <thread>: error: blkhash: ... verdict ...": the failed check.
CHECK_ERROR_RE = re.compile(r"^nbdkit: .*error: blkhash: .*\bverdict\b",
                            re.M)


def tail(text, n=3000):
    return text[-n:]


def random_image(size, pieces):
    """size bytes: `pieces` random extents of os.urandom data at random
    (unaligned) places, zeros elsewhere, and data up to the last byte."""
    data = bytearray(size)
    rng = random.Random(os.urandom(16))
    for _ in range(pieces):
        length = rng.randint(1, 300000)
        offset = rng.randrange(0, size - length)
        data[offset:offset + length] = os.urandom(length)
    data[size - 3000:] = os.urandom(3000)
    return bytes(data)


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, env=ENV,
                   capture_output=True, timeout=120)


def reports_for(stderr, export=""):
    return [r for r in parse_reports(stderr) if r["export"] == export]


class CpuHogs:
    """n busy loops (`yes > /dev/null`) for the duration of a with block."""

    def __init__(self, n):
        self.n = n
        self.procs = []

    def __enter__(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                ["yes"], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


# --- 1. The check idiom, repeated ----------------------------------------------


class Flow:
    """One way of using the filter: nbdkit's plugin arguments, the --run
    command before the check, the value the export must have, and what to
    prepare before and verify after each run."""

    def __init__(self, name, plugin, command, want, prepare=None,
                 output=None, content=None, copy_checks=True, runs=None,
                 hogs=False):
        self.name = name
        self.plugin = plugin
        self.command = command
        self.want = want
        self.prepare = prepare or (lambda: None)
        self.output = output        # the copy's file ...
        self.content = content      # ... and what it must hold
        # With a wrong value the copy still succeeds and the check fails
        # (else the request that completes the image fails the copy).
        self.copy_checks = copy_checks
        self.runs = runs or OTHER_RUNS
        self.hogs = hogs            # run under CPU load


def run_flow(flow, expect):
    """One run: (passed, problem or None)."""
    flow.prepare()
    p, secs = run_nbdkit(flow.plugin, ["blkhash-expect=" + expect],
                         run=flow.command + CHECK, timeout=180)
    if p is None:
        return False, "timeout"
    right = expect == flow.want
    if right:
        if p.returncode != 0:
            return False, "exit status %d: %s" % (p.returncode,
                                                  tail(p.stderr))
        reports = reports_for(p.stderr)
        if not reports:
            return True, "no report line: " + tail(p.stderr)
        last = reports[-1]
        if last["digest"] != flow.want or last.get("verdict") != "match":
            return True, "report %s, want %s verdict=match" % (
                last["line"], flow.want)
        if flow.output and read(flow.output) != flow.content:
            return True, "the copy differs from the source"
        return True, None
    if p.returncode == 0:
        return True, "exit status 0 with a wrong value: " + tail(p.stderr)
    if any(r.get("verdict") == "match" for r in parse_reports(p.stderr)):
        return False, "verdict=match with a wrong value: " + tail(p.stderr)
    if flow.copy_checks and CHECK_ERROR_RE.search(p.stderr) is None:
        return False, "no \"blkhash: ... verdict\" error: " + tail(p.stderr)
    return False, None


def repeat_flow(flow):
    """Runs the flow flow.runs times with a wrong value and with the right
    one, interleaved; one check for each side."""
    wrong = flip_hex(flow.want)
    passes, failures, problems = 0, 0, []
    start = time.monotonic()
    for _ in range(flow.runs):
        for expect in (wrong, flow.want):
            passed, problem = run_flow(flow, expect)
            if expect == wrong:
                passes += passed
            else:
                failures += not passed
            if problem:
                problems.append(("right" if expect == flow.want else
                                 "wrong") + ": " + problem)
    print("check idiom %s: %d runs each way in %.1f s: wrong value passed "
          "%d, right value failed %d" % (flow.name, flow.runs,
                                         time.monotonic() - start, passes,
                                         failures), flush=True)
    what = "check idiom " + flow.name
    check(passes == 0, what + ": a wrong value never passes (%d of %d did)"
          % (passes, flow.runs), problems[:2])
    check(failures == 0, what + ": the right value never fails (%d of %d "
          "did)" % (failures, flow.runs), problems[:2])
    check(not problems, what + ": every run as expected",
          "%d problems, first: %s" % (len(problems), problems[:2]))


def test_check_idiom(tmp):
    raw = random_image(SIZE, 12)
    src_raw = os.path.join(tmp, "src.raw")
    src_qcow2 = os.path.join(tmp, "src.qcow2")
    write(src_raw, raw)
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src_raw, src_qcow2)
    qcow2 = read(src_qcow2)
    raw_hex, qcow2_hex = reference(raw), reference(qcow2)
    check(raw_hex != qcow2_hex, "the qcow2 file's value is not the raw one")

    target = os.path.join(tmp, "target.raw")
    out = os.path.join(tmp, "out.raw")
    q_out = shlex.quote(out)

    def fresh_target():
        if os.path.exists(target):
            os.unlink(target)
        with open(target, "wb") as f:
            f.truncate(SIZE)

    def no_output():
        if os.path.exists(out):
            os.unlink(out)

    www = os.path.join(tmp, "www")
    os.mkdir(www)
    shutil.copy(src_qcow2, os.path.join(www, "src.qcow2"))
    http = HttpServer(www, os.path.join(tmp, "http.log"))
    qemu_pid = None
    try:
        sock, qemu_pid = start_qemu_nbd(tmp, "guest", src_qcow2)
        to_raw = 'qemu-img convert -f qcow2 "$uri" -O raw ' + q_out
        flows = [
            Flow("target qemu-img convert -n", ["file", target],
                 "qemu-img convert -n -f qcow2 -O raw %s \"$uri\""
                 % shlex.quote(src_qcow2), raw_hex, fresh_target, target,
                 raw, copy_checks=False),
            Flow("target qemu-img convert -n -W", ["file", target],
                 "qemu-img convert -n -W -f qcow2 -O raw %s \"$uri\""
                 % shlex.quote(src_qcow2), raw_hex, fresh_target, target,
                 raw, copy_checks=False),
            Flow("target nbdcopy", ["file", target],
                 "nbdcopy %s \"$uri\"" % shlex.quote(src_raw), raw_hex,
                 fresh_target, target, raw, copy_checks=False),
            Flow("qcow2 file, file plugin", ["-r", "file", src_qcow2],
                 to_raw, qcow2_hex, no_output, out, raw, runs=RUNS,
                 hogs=True),
            Flow("qcow2 file, curl plugin",
                 ["curl", http.url("src.qcow2"), "protocols=http"], to_raw,
                 qcow2_hex, no_output, out, raw, runs=max(3, RUNS // 2),
                 hogs=True),
            Flow("guest view, nbd plugin + qemu-nbd",
                 ["nbd", "socket=" + sock],
                 'qemu-img convert -f raw "$uri" -O raw ' + q_out, raw_hex,
                 no_output, out, raw, copy_checks=False),
            Flow("existing image, no copy", ["-r", "file", src_raw], "true",
                 raw_hex),
        ]
        for flow in flows:
            if flow.hogs and HOGS:
                with CpuHogs(HOGS):
                    repeat_flow(flow)
            else:
                repeat_flow(flow)
    finally:
        http.stop()
        if qemu_pid:
            stop_pid(qemu_pid)


# --- 2. Incomplete is failure --------------------------------------------------


def flaky_plugin(path, fail_from, fail_to):
    """An eval plugin serving the bytes of `path`, read-only, whose reads
    touching [fail_from, fail_to) fail with EIO."""
    size = os.path.getsize(path)
    pread = ('if [ $(($4 + $3)) -gt %d ] && [ $4 -lt %d ]; then '
             'echo "EIO flaky range" >&2; exit 1; fi; '
             'exec dd if=%s skip=$4 count=$3 iflag=skip_bytes,count_bytes '
             'status=none' % (fail_from, fail_to, shlex.quote(path)))
    return ["eval", "get_size=echo %d" % size, "pread=" + pread]


def test_incomplete(tmp):
    raw = random_image(2 * MIB, 6)
    src_raw = os.path.join(tmp, "flaky-src.raw")
    write(src_raw, raw)
    qcow2_path = os.path.join(tmp, "flaky.qcow2")
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src_raw, qcow2_path)
    # One MiB of random bytes after the qcow2's clusters: part of the file
    # (and of its checksum), never read by qemu-img.
    with open(qcow2_path, "ab") as f:
        f.write(os.urandom(MIB))
    qcow2 = read(qcow2_path)
    out = os.path.join(tmp, "flaky-out.raw")
    cases = [
        ("qcow2 file, last MiB unreadable", qcow2_path, len(qcow2) - MIB,
         'qemu-img convert -f qcow2 "$uri" -O raw %s' % shlex.quote(out),
         raw),
        ("raw image read at the start, end unreadable", src_raw, MIB,
         "nbdsh -u \"$uri\" -c 'h.pread(65536, 0)'", None),
    ]
    for name, path, fail_from, command, copy in cases:
        size = os.path.getsize(path)
        want = reference(read(path))
        for params in (["blkhash-expect=" + want], []):
            what = "incomplete %s, %s" % (
                name, "expect set" if params else "no expectation")
            if os.path.exists(out):
                os.unlink(out)
            p, _ = run_nbdkit(flaky_plugin(path, fail_from, size), params,
                              run=command + " && echo COPIED" + CHECK,
                              timeout=180)
            if not p:
                continue
            check("COPIED" in p.stdout, what + ": the client never met "
                  "the failing range", tail(p.stderr))
            if copy is not None:
                check(os.path.exists(out) and read(out) == copy,
                      what + ": the copy == source")
            check(p.returncode != 0, what + ": the check fails (nbdkit "
                  "exits non-zero)", tail(p.stderr))
            reports = reports_for(p.stderr)
            check(len(reports) >= 1
                  and all(r["digest"] == "incomplete"
                          and r.get("verdict") == "incomplete"
                          for r in reports),
                  what + ": every report says incomplete ... "
                  "verdict=incomplete", tail(p.stderr))
            check(CHECK_ERROR_RE.search(p.stderr) is not None,
                  what + ": a \"blkhash: ... verdict\" error",
                  tail(p.stderr))
        # Control: the same plugin with nothing failing.
        what = "incomplete %s, control without failures" % name
        p, _ = run_nbdkit(flaky_plugin(path, size, size), [],
                          run=command + CHECK, timeout=180)
        if p:
            check(p.returncode == 0, what + ": the check passes",
                  tail(p.stderr))
            reports = reports_for(p.stderr)
            check(reports and reports[-1]["digest"] == want
                  and reports[-1].get("verdict") == "computed",
                  what + ": value == reference, verdict=computed",
                  tail(p.stderr))


# --- 10, 11. Result file formats and the verdict field -------------------------


def description_of(json_path, export=""):
    with open(json_path) as f:
        for e in json.load(f).get("exports", []):
            if e.get("export-name") == export:
                return e.get("description")
    return None


def test_formats_and_verdicts(tmp):
    content = random_image(MIB + 777, 4)
    disk = os.path.join(tmp, "fmt.raw")
    write(disk, content)
    want = reference(content)
    wrong = flip_hex(want)
    result = os.path.join(tmp, "fmt-result")
    listed = os.path.join(tmp, "fmt-list.json")
    plain = os.path.join(tmp, "fmt-plain.json")
    # The check prints the export list (with descriptions) when it passes;
    # a plain connection reads the description after a failing one.
    command = ('nbdinfo --list --json "$uri" > %s; rc=$?; '
               'nbdinfo --json --no-content "$uri" > %s; exit $rc'
               % (shlex.quote(listed), shlex.quote(plain)))
    for fmt in ("hex", "sum", "json", None):
        for expect, verdict in ((None, "computed"), (want, "match"),
                                (wrong, "mismatch")):
            what = "format %s, %s" % (fmt or "default", verdict)
            for path in (result, listed, plain):
                if os.path.exists(path):
                    os.unlink(path)
            params = ["blkhash-file=" + result]
            if fmt:
                params.append("blkhash-file-format=" + fmt)
            if expect:
                params.append("blkhash-expect=" + expect)
            p, _ = run_nbdkit(["-r", "file", disk], params, run=command,
                              timeout=120)
            if not p:
                continue
            check((p.returncode == 0) == (verdict != "mismatch"),
                  what + ": the check passes exactly when the verdict is "
                  "not mismatch", "%d %s" % (p.returncode, tail(p.stderr)))
            reports = reports_for(p.stderr)
            if not check(len(reports) >= 1, what + ": a report",
                         tail(p.stderr)):
                continue
            last = reports[-1]
            check(last["digest"] == want and last["label"] == "sha256/64K"
                  and last.get("size") == str(len(content)),
                  what + ": report == reference", last["line"])
            check(last.get("verdict") == verdict
                  and last["line"].endswith(" verdict=" + verdict),
                  what + ": the line ends with verdict=" + verdict,
                  last["line"])
            line = last["line"][len("nbdkit: "):] \
                if last["line"].startswith("nbdkit: ") else last["line"]
            if verdict != "mismatch":
                check(os.path.exists(listed)
                      and description_of(listed) == line,
                      what + ": nbdinfo --list --json shows the report line "
                      "as the description",
                      os.path.exists(listed) and read(listed)[:2000])
            check(os.path.exists(plain) and description_of(plain) == line,
                  what + ": a plain connection's description is the report "
                  "line", os.path.exists(plain) and read(plain)[:2000])
            if not check(os.path.exists(result), what + ": result file"):
                continue
            text = read(result).decode()
            if fmt in ("hex", None):
                check(text == want + "\n", what + ": file is hex + newline",
                      text)
            elif fmt == "sum":
                check(text == want + "  -\n", what + ": file is "
                      "\"<hex>  -\\n\" for the default export", text)
            else:
                try:
                    obj = json.loads(text)
                except ValueError as e:
                    check(False, what + ": json parses", "%s: %r" % (e, text))
                    continue
                check(obj.get("algorithm") == "sha256"
                      and obj.get("block_size") == 65536
                      and obj.get("checksum") == want
                      and obj.get("size") == len(content)
                      and obj.get("export") == ""
                      and obj.get("verdict") == verdict
                      and obj.get("expected") == expect
                      and "expected" in obj,
                      what + ": json fields == reference", obj)
                check(isinstance(obj.get("hashed"), int)
                      and isinstance(obj.get("read"), int),
                      what + ": json hashed and read are numbers", obj)

    # sum names the export.
    d = os.path.join(tmp, "fmt-dir")
    os.mkdir(d)
    write(os.path.join(d, "disk1"), content)
    for fmt, want_text in (("sum", want + "  disk1\n"),):
        if os.path.exists(result):
            os.unlink(result)
        p, _ = run_nbdkit(["-r", "file", "dir=" + d],
                          ["blkhash-file=" + result,
                           "blkhash-file-format=" + fmt],
                          run='nbdcopy "nbd+unix:///disk1?socket=$unixsocket"'
                          ' null:' + CHECK, timeout=120)
        if p:
            check(p.returncode == 0, "format sum, export disk1: check "
                  "passes", tail(p.stderr))
            check(os.path.exists(result) and read(result).decode() ==
                  want_text, "format sum, export disk1: \"<hex>  disk1\"",
                  os.path.exists(result) and read(result))

    p, _ = run_nbdkit(["-r", "file", disk],
                      ["blkhash-file=" + result, "blkhash-file-format=xml"],
                      run="echo STARTED", timeout=60)
    if p:
        check(p.returncode != 0 and "STARTED" not in p.stdout
              and any("error" in l and "blkhash-file-format" in l
                      for l in p.stderr.splitlines()),
              "format xml: refused at start-up naming blkhash-file-format",
              p.stderr)

    # Digest names.
    for name in ("SHA256", "sha-256", "SHA2-256", "sha256"):
        what = "digest name %s" % name
        if os.path.exists(result):
            os.unlink(result)
        p, _ = run_nbdkit(["-r", "file", disk],
                          ["blkhash-digest=" + name, "blkhash-file=" + result,
                           "blkhash-file-format=json"],
                          run='nbdinfo --list "$uri"', timeout=120)
        if not p:
            continue
        reports = reports_for(p.stderr)
        check(p.returncode == 0 and reports
              and reports[-1]["label"] == "sha256/64K"
              and reports[-1]["digest"] == want,
              what + ": the line says sha256/64K and the reference value",
              tail(p.stderr))
        try:
            obj = json.loads(read(result)) if os.path.exists(result) else {}
        except ValueError:
            obj = {}
        check(obj.get("algorithm") == "sha256" and obj.get("checksum") == want,
              what + ": json algorithm \"sha256\"", obj)


# --- 9. Logging ------------------------------------------------------------------

# Runs "$@" in a mount namespace of its own where /dev is a tmpfs of
# symlinks to the real /dev entries, plus /dev/log -> $SYSLOG_SOCKET.
PRIVATE_DEV_LOG = r'''
set -e
mount --make-rprivate /
mount --rbind /dev "$REAL_DEV"
mount -t tmpfs -o mode=755 blkhash-test-dev /dev
for f in "$REAL_DEV"/* "$REAL_DEV"/.[!.]*; do
  if [ -e "$f" ] || [ -L "$f" ]; then ln -s "$f" /dev/"${f##*/}"; fi
done
ln -sf "$SYSLOG_SOCKET" /dev/log
exec "$@"
'''


class SyslogCapture:
    """A datagram socket that receives what commands started through
    wrap() send to syslog."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "syslog.sock")
        self.real_dev = os.path.join(tmp, "real-dev")
        os.mkdir(self.real_dev)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.setblocking(False)

    @staticmethod
    def available():
        return os.geteuid() == 0 and shutil.which("unshare") is not None

    def wrap(self, cmd):
        return ["env", "REAL_DEV=" + self.real_dev,
                "SYSLOG_SOCKET=" + self.path, "unshare", "-m", "sh", "-c",
                PRIVATE_DEV_LOG, "sh", *cmd]

    def messages(self):
        """[(facility, severity, text)] received so far."""
        out = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            m = re.match(rb"^<(\d+)>(.*)$", data, re.S)
            if m:
                pri = int(m.group(1))
                out.append((pri >> 3, pri & 7,
                            m.group(2).decode("utf-8", "replace")))

    def close(self):
        self.sock.close()


LOG_DAEMON = 3  # syslog facility number


def test_logging(tmp):
    content = random_image(MIB, 3)
    disk = os.path.join(tmp, "log.raw")
    write(disk, content)
    want = reference(content)
    result = os.path.join(tmp, "log-result")
    report_re = re.compile(r"blkhash: sha256/64K %s export=\"\" .*"
                           r"verdict=computed" % want)

    def run(extra, wrapper=None):
        if os.path.exists(result):
            os.unlink(result)
        cmd = ["nbdkit", "-U", "-", "-f", *extra, "--filter=" + FILTER,
               "-r", "file", disk, "blkhash-file=" + result,
               "--run", 'nbdinfo --list "$uri"']
        if wrapper:
            cmd = wrapper(cmd)
        return subprocess.run(cmd, capture_output=True, text=True, env=ENV,
                              timeout=120)

    p = run([])
    check(p.returncode == 0 and report_re.search(p.stderr) is not None,
          "log default foreground: the report line is on stderr", p.stderr)

    p = run(["--log=null"])
    check(p.returncode == 0, "log null: exit status", p.stderr)
    check(report_re.search(p.stderr) is None and not parse_reports(p.stderr),
          "log null: no report line printed", p.stderr)
    check(os.path.exists(result) and read(result) == (want + "\n").encode(),
          "log null: the report was made (result file == reference)")

    capture = SyslogCapture(tmp) if SyslogCapture.available() else None
    if capture is None:
        print("NOTE: syslog not capturable here (needs root and unshare): "
              "only stderr is checked")
    try:
        p = run(["--log=syslog"], capture.wrap if capture else None)
        check(p.returncode == 0, "log syslog: exit status", p.stderr)
        check(report_re.search(p.stderr) is None
              and not parse_reports(p.stderr),
              "log syslog: no report line on stderr", p.stderr)
        check(os.path.exists(result)
              and read(result) == (want + "\n").encode(),
              "log syslog: the report was made (result file == reference)")
        if capture:
            msgs = capture.messages()
            ours = [m for m in msgs if report_re.search(m[2])]
            check(len(ours) == 1, "log syslog: the report line reached "
                  "syslog once", msgs[-5:])
            check(all(m[0] == LOG_DAEMON for m in ours),
                  "log syslog: facility daemon", ours)

            # In the background (no -f, no --run) nbdkit logs to syslog.
            sock = os.path.join(tmp, "log-bg.sock")
            pidfile = os.path.join(tmp, "log-bg.pid")
            if os.path.exists(result):
                os.unlink(result)
            p = subprocess.run(capture.wrap(
                ["nbdkit", "-U", sock, "-P", pidfile, "--filter=" + FILTER,
                 "-r", "file", disk, "blkhash-file=" + result]),
                capture_output=True, text=True, env=ENV, timeout=60)
            pid = wait_for_pid(pidfile)
            try:
                c = subprocess.run(["nbdinfo", "--list",
                                    "nbd+unix:///?socket=" + sock],
                                   capture_output=True, text=True, env=ENV,
                                   timeout=60)
                check(p.returncode == 0 and c.returncode == 0,
                      "log background: started, check passes",
                      p.stderr + c.stderr)
            finally:
                if pid:
                    stop_pid(pid, timeout=60)
            check(report_re.search(p.stderr) is None,
                  "log background: nothing on the starting stderr", p.stderr)
            msgs = capture.messages()
            ours = [m for m in msgs if report_re.search(m[2])]
            check(len(ours) >= 1 and all(m[0] == LOG_DAEMON for m in ours),
                  "log background: the report line in syslog, facility "
                  "daemon", msgs[-5:])
    finally:
        if capture:
            capture.close()


def main():
    run_tests(test_formats_and_verdicts, test_logging, test_incomplete,
              test_check_idiom)


if __name__ == "__main__":
    main()
