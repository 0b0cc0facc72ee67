#!/usr/bin/python3
"""Reports over a server's life (issue 14): never a wrong value, no
unasked-for download, bounded per-name state, stoppable, never a stale
result file, a retried copy is not refused.

Run: meson test -C build lifecycle --print-errorlogs

Proves:
  3. Two export names on one 32 MiB memory export (the memory plugin
     serves one disk under every name), every other 64K block data: while
     the report of name "a" is made (by the check, or at its disconnect
     before issue 14), another name "b" keeps writing single bytes into
     the zeros; the last report of every name, made at shutdown after all
     writes, equals the hashlib reference of the final content read back
     (f5593ce: wrong in 4 of 5 runs).  Repeated 4 times.
     The cache filter below ours (`--filter=blkhash --filter=cache`:
     blkhash is nearest the client, the cache holds writes back, so the
     plugin's extents show holes where the cache has data), and the cow
     filter likewise: blocks written whole, then part of one block
     rewritten in a later session: every report after the rewrite equals
     the reference of the content read back (never zeros completed from
     stale extents).
  4. `qemu-img info "$uri"`, then `qemu-img convert -f qcow2 "$uri" -O raw
     out.raw`, then the check, through the curl plugin from a loopback
     HTTP server that logs every byte range: the server sends at most 1.05
     times the qcow2 file, the check passes with the right blkhash-expect
     and the converted image equals the source.
  5. 1000 export names of a 256 GiB memory export probed (connected, no
     data request) in one process: nbdkit's VmRSS grows by less than 20 MiB, no report names
     any of them, and nbdkit exits within 5 s of SIGTERM.  With
     blkhash-max-exports=4, data requests on 4 names succeed, the first
     one on a fifth name fails with EIO and the log names
     blkhash-max-exports; a probe of a sixth name and data requests on the
     first 4 still work, and only those 4 are reported.
  6. A second SIGTERM (or a SIGINT after the SIGTERM) during a report that
     reads a 64 GiB pattern export (which takes far longer than the
     test's 3 s wait) stops nbdkit within 2 s of that second signal; the
     report says incomplete ... verdict=incomplete and blkhash-file is
     not there.  A single SIGTERM on a 32 MiB pattern export makes the
     final report, equal to the reference of the pattern's bytes, and
     writes the result file.
  7. A stale blkhash-file is removed at start-up, before any report.  On
     a full tmpfs (mounted here, unmounted in a finally): a report whose
     result file cannot be written removes the previous file (never a
     stale value) and logs an error naming the file, leaving no temporary
     file; once there is room again the next report writes it.
  8. A copy into a memory export with blkhash-expect killed mid-way
     (SIGKILL of qemu-img convert and of a serial nbdcopy, slowed by
     nbdkit's delay filter, and of a Python NBD client with requests in flight, after
     writing garbage),
     then the right copy again into the same nbdkit: it succeeds, the
     check passes, the report says verdict=match with the reference.

Every expected value is the hashlib reference (harness.reference) of
bytes made here with os.urandom or read back through NBD, never the
filter's own output.
"""

import array
import errno
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, parse_reports, read,  # noqa: E402
                     reference, run_nbdkit, run_tests, ENV, HttpServer)
from traffic import Server  # noqa: E402

MIB = 1 << 20
B = 65536


def tail(text, n=3000):
    return text[-n:]


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)


def last_reports(reports):
    """The last report of each export name."""
    return {r["export"]: r for r in reports}


def wait_for(condition, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def check_cmd(sock, export=""):
    """The check idiom against a server on a Unix socket."""
    return ["nbdinfo", "--list", "nbd+unix:///%s?socket=%s" % (export, sock)]


# --- 3. Two names over one storage; a lower layer with stale extents -----------


def two_names_case(tmp, run):
    what = "two names, run %d" % run
    size = 32 * MIB
    digest = "sha3-512"          # slow enough that the report takes a while
    rng = random.Random(os.urandom(16))
    srv = Server(tmp, ["memory", "size=%d" % size],
                 ["blkhash-digest=" + digest], tag="two-names-%d" % run)
    final = None
    writes = [0]
    try:
        # Half data: every other 64K block, written under name "w".
        h = srv.connect("w")
        for off in range(0, size, 2 * B):
            h.pwrite(os.urandom(B), off)
        h.shutdown()
        srv.handles.remove(h)

        # Name "b" writes single bytes into the zeros.  Its first session
        # lasts until a second after "a" left: before issue 14 the report
        # of "a" starts at that disconnect, and "b" must not leave then
        # (its own report would make its next session wait).  Then
        # sessions of 100 writes with a short pause between them: since
        # issue 14 the report is made by the check, which waits for a
        # moment with no connection attached, and "b" comes back during
        # the report.
        stop = threading.Event()
        first_until = [float("inf")]

        def writer():
            deadline = time.monotonic() + 90
            first = True
            while not stop.is_set() and time.monotonic() < deadline:
                hb = nbd.NBD()
                hb.set_export_name("b")
                hb.connect_unix(srv.sock)
                n = 0
                while not stop.is_set() and (
                        n < 100 or
                        (first and time.monotonic() < first_until[0])):
                    off = rng.randrange(0, size // (2 * B)) * 2 * B + B \
                        + rng.randrange(0, B)
                    hb.pwrite(bytes([rng.randrange(1, 256)]), off)
                    writes[0] += 1
                    n += 1
                hb.shutdown()
                first = False
                time.sleep(0.001)

        writing = threading.Thread(target=writer)
        writing.start()
        try:
            wait_for(lambda: writes[0] > 0, 30)
            # Name "a": one data request, so its report has everything to
            # find.  Its disconnect in a thread of its own: before issue 14
            # the report was made at the disconnect, which waited for it.
            h = srv.connect("a")
            h.pread(512, 0)
            srv.handles.remove(h)
            leaving = threading.Thread(target=h.shutdown)
            leaving.start()
            first_until[0] = time.monotonic() + 1.0
            checker = subprocess.Popen(check_cmd(srv.sock),
                                       stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True,
                                       env=ENV)
            before = writes[0]

            def a_reported():
                return any(r["export"] == "a" for r in srv.reports())

            wait_for(a_reported, 90)
            during = writes[0] - before
        finally:
            stop.set()
            writing.join(120)
        leaving.join(60)
        print("%s: %d single-byte writes under \"b\" from the disconnect "
              "of \"a\" to its report" % (what, during), flush=True)
        check(a_reported() and during > 0,
              what + ": \"a\" was reported while \"b\" wrote",
              "%d writes; %s" % (during, tail(srv.log())))
        try:
            checker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            checker.kill()
            checker.wait()
            check(False, what + ": the check ended")
        final = srv.read_back("r")
    finally:
        rc, log = srv.stop()
    check(rc == 0, what + ": nbdkit exit status 0", tail(log))
    if final is None:
        return
    want = reference(final, digest)
    last = last_reports(parse_reports(log))
    for name in ("w", "a", "b", "r"):
        r = last.get(name)
        check(r is not None and r["digest"] == want,
              what + ": the last report of \"%s\" == reference of the final "
              "content" % name, r["line"] if r else tail(log))


def lower_layer_case(tmp, inner, run):
    what = "%s filter below, run %d" % (inner, run)
    size = 4 * MIB
    model = bytearray(size)
    srv = Server(tmp, ["memory", "size=%d" % size], [],
                 inner_filters=[inner], tag="%s-%d" % (inner, run))
    final = None
    try:
        # Session 1: blocks 0..15 written whole.
        h = srv.connect()
        data = os.urandom(16 * B)
        h.pwrite(data, 0)
        model[:16 * B] = data
        h.shutdown()
        srv.handles.remove(h)
        first = reference(bytes(model))
        # Session 2: part of block 3 rewritten, and part of block 40 (a
        # block never written: its other bytes really are zeros).
        h = srv.connect()
        for off in (3 * B + 1000, 40 * B + 5):
            piece = os.urandom(100)
            h.pwrite(piece, off)
            model[off:off + 100] = piece
        h.shutdown()
        srv.handles.remove(h)
        c = srv.ask_verdict()
        check(c.returncode == 0, what + ": the check passes", c.stderr)
        by_check = srv.reports()
        final = srv.read_back()
    finally:
        rc, log = srv.stop()
    check(rc == 0, what + ": nbdkit exit status 0", tail(log))
    if final is None:
        return
    check(final == bytes(model), what + ": the content read back == what "
          "was written")
    want = reference(final)
    reports = parse_reports(log)
    # A report made before the rewrite (at the first disconnect, before
    # issue 14) has the first session's value; every other one the final.
    check(by_check and by_check[-1]["digest"] == want,
          what + ": the check's report == reference", tail(log))
    check(reports and all(r["digest"] in (first, want) for r in reports)
          and reports[-1]["digest"] == want,
          what + ": every report == reference of the content at the time",
          "\n".join(r["line"] for r in reports) + "\nwant " + want)


def test_shared_storage(tmp):
    for run in range(4):
        two_names_case(tmp, run)
    for run in range(2):
        for inner in ("cache", "cow"):
            lower_layer_case(tmp, inner, run)


# --- 4. A probe, then the convert: no second download ---------------------------


def test_probe_then_convert(tmp):
    raw = bytearray(os.urandom(24 * MIB))
    raw[5 * MIB:7 * MIB] = bytes(2 * MIB)       # a hole
    src_raw = os.path.join(tmp, "probe-src.raw")
    write(src_raw, raw)
    www = os.path.join(tmp, "probe-www")
    os.mkdir(www)
    qcow2_path = os.path.join(www, "disk.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                    src_raw, qcow2_path], check=True, env=ENV,
                   capture_output=True, timeout=120)
    qcow2 = read(qcow2_path)
    want = reference(qcow2)
    out = os.path.join(tmp, "probe-out.raw")
    log = os.path.join(tmp, "probe-http.log")
    http = HttpServer(www, log)
    try:
        command = ('qemu-img info "$uri" && '
                   'qemu-img convert -f qcow2 "$uri" -O raw %s && '
                   'nbdinfo --list "$uri"' % shlex.quote(out))
        p, _ = run_nbdkit(["curl", http.url("disk.qcow2"), "protocols=http"],
                          ["blkhash-expect=" + want], run=command,
                          timeout=300)
        served = http.bytes_served("disk.qcow2", len(qcow2))
    finally:
        http.stop()
    what = "qemu-img info; convert; check over curl"
    ratio = served / len(qcow2)
    print("%s: served %d bytes for a %d-byte file (%.3fx)"
          % (what, served, len(qcow2), ratio), flush=True)
    if not p:
        return
    check(p.returncode == 0, what + ": the check passes", tail(p.stderr))
    reports = [r for r in parse_reports(p.stderr) if r["export"] == ""]
    check(reports and reports[-1]["digest"] == want
          and reports[-1].get("verdict") == "match",
          what + ": report == reference, verdict=match", tail(p.stderr))
    check(os.path.exists(out) and read(out) == bytes(raw),
          what + ": converted image == source")
    check(ratio <= 1.05, what + ": at most 1.05 times the file downloaded",
          "%.3f" % ratio)


# --- 5. Many names: bounded state, a limit -------------------------------------


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def stop_within(srv, seconds):
    """SIGTERM; (exit status or None if still running after `seconds`
    (then SIGKILL), elapsed seconds, log)."""
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rc = srv.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        rc = None
        srv.proc.kill()
        srv.proc.wait()
    elapsed = time.monotonic() - start
    srv.log_fd.close()
    srv.result = (rc, srv.log())
    return rc, elapsed, srv.result[1]


def test_many_names(tmp):
    # The filter used to give each name a block table for the whole
    # export at open, and a report at shutdown.
    what = "1000 probed names"
    srv = Server(tmp, ["memory", "size=256G"], [], tag="names")
    rc = None
    try:
        pid = srv.proc.pid

        def probe(name):
            h = nbd.NBD()
            h.set_export_name(name)
            h.connect_unix(srv.sock)
            h.shutdown()

        probe("warm-up")
        before = vm_rss_kib(pid)
        start = time.monotonic()
        for i in range(1000):
            probe("name%d" % i)
        secs = time.monotonic() - start
        after = vm_rss_kib(pid)
        print("%s: %.1f s; nbdkit VmRSS %d KiB before, %d KiB after"
              % (what, secs, before, after), flush=True)
        check(after - before < 20 * 1024, what + ": VmRSS grows by less "
              "than 20 MiB", "%d KiB -> %d KiB" % (before, after))
        rc, elapsed, log = stop_within(srv, 5)
        print("%s: exit %.1f s after SIGTERM" % (what, elapsed), flush=True)
    finally:
        if rc is None:
            srv.stop()
    log = srv.result[1]
    check(rc == 0, what + ": nbdkit exits (status 0) within 5 s of "
          "SIGTERM", "%r %s" % (rc, tail(log)))
    named = [r["line"] for r in parse_reports(log)
             if re.match(r"^(name\d+|warm-up)$", r["export"])]
    check(not named, what + ": no report for a probed name", named[:3])

    what = "blkhash-max-exports=4"
    srv = Server(tmp, ["memory", "size=1M"], ["blkhash-max-exports=4"],
                 tag="limit")
    results = {}
    try:
        for i in range(5):
            h = srv.connect("n%d" % i)
            try:
                h.pread(512, 0)
                results[i] = "ok"
            except nbd.Error as e:
                # libnbd gives the errno as a number or as its name.
                results[i] = errno.errorcode.get(e.errno, e.errno)
            h.shutdown()
            srv.handles.remove(h)
        h = srv.connect("probe")
        h.shutdown()
        srv.handles.remove(h)
        again = []
        for i in range(4):
            h = srv.connect("n%d" % i)
            h.pwrite(b"x" * 100, 1000 * i)
            again.append(h.pread(100, 1000 * i) == b"x" * 100)
            h.shutdown()
            srv.handles.remove(h)
    except nbd.Error as e:
        check(False, what + ": the clients ran", e)
    finally:
        rc, log = srv.stop()
    check([results.get(i) for i in range(5)] ==
          ["ok"] * 4 + ["EIO"], what + ": data requests on 4 names "
          "work, the 5th name's fails with EIO", results)
    check(again == [True] * 4, what + ": the 4 tracked names still work",
          again)
    check(any("error" in l and "blkhash-max-exports" in l
              for l in log.splitlines()),
          what + ": the log names blkhash-max-exports", tail(log))
    check(sorted(last_reports(parse_reports(log))) ==
          ["n0", "n1", "n2", "n3"], what + ": only the 4 tracked names "
          "are reported", [r["line"] for r in parse_reports(log)])


# --- 6. Signals during a report ---------------------------------------------------


def pattern_bytes(size):
    """The pattern plugin's content: each 8-byte word is its own offset,
    big-endian."""
    words = array.array("Q", range(0, size, 8))
    if sys.byteorder == "little":
        words.byteswap()
    return words.tobytes()


def test_signals(tmp):
    # The pattern plugin's content, as this test understands it.
    p, _ = run_nbdkit(["pattern", "size=1M"], [],
                      run="nbdcopy \"$uri\" %s"
                      % shlex.quote(os.path.join(tmp, "pattern.raw")))
    check(p and p.returncode == 0 and
          read(os.path.join(tmp, "pattern.raw")) == pattern_bytes(MIB),
          "pattern plugin: content is the 8-byte big-endian offsets")
    os.unlink(os.path.join(tmp, "pattern.raw"))

    for second in (signal.SIGTERM, signal.SIGINT):
        what = "SIGTERM then %s during a 64G report" % second.name
        result = os.path.join(tmp, "signal-sum")
        write(result, b"stale\n")
        srv = Server(tmp, ["pattern", "size=64G"],
                     ["blkhash-file=" + result], tag="signals")
        rc = "not stopped"
        try:
            h = srv.connect()
            h.pread(4096, 0)
            h.shutdown()
            srv.handles.remove(h)
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(3)
            alive = srv.proc.poll() is None
            check(alive, what + ": the report is still running 3 s after "
                  "the first SIGTERM", tail(srv.log()))
            start = time.monotonic()
            srv.proc.send_signal(second)
            try:
                rc = srv.proc.wait(5)
            except subprocess.TimeoutExpired:
                rc = None
            elapsed = time.monotonic() - start
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
            srv.log_fd.close()
            log = srv.log()
        print("%s: nbdkit %s %.2f s after the second signal"
              % (what, "exited" if rc is not None else "still running",
                 elapsed), flush=True)
        check(rc is not None and elapsed <= 2.0,
              what + ": nbdkit stops within 2 s of the second signal",
              "%.2f s, %s" % (elapsed, tail(log)))
        reports = [r for r in parse_reports(log) if r["export"] == ""]
        check(reports and all(r["digest"] == "incomplete"
                              and r.get("verdict") == "incomplete"
                              for r in reports),
              what + ": the report says incomplete ... verdict=incomplete",
              tail(log))
        check(not os.path.exists(result),
              what + ": no result file claims a value",
              os.path.exists(result) and read(result))

    what = "one SIGTERM, 32M pattern export"
    size = 32 * MIB
    want = reference(pattern_bytes(size))
    result = os.path.join(tmp, "signal-sum")
    srv = Server(tmp, ["pattern", "size=%d" % size],
                 ["blkhash-file=" + result], tag="one-signal")
    try:
        h = srv.connect()
        h.pread(4096, 0)
        h.shutdown()
        srv.handles.remove(h)
    finally:
        rc, log = srv.stop(timeout=120)
    reports = [r for r in parse_reports(log) if r["export"] == ""]
    check(rc == 0, what + ": exit status 0", tail(log))
    check(len(reports) == 1 and reports[0]["digest"] == want
          and reports[0].get("verdict") == "computed",
          what + ": the final report == reference, verdict=computed",
          tail(log))
    check(os.path.exists(result) and read(result) == (want + "\n").encode(),
          what + ": result file == reference")


# --- 7. The result file: stale, disk full -------------------------------------


def test_result_file(tmp):
    what = "stale result file"
    result = os.path.join(tmp, "stale-sum")
    write(result, b"0" * 64 + b"\n")
    srv = Server(tmp, ["memory", "size=1M"], ["blkhash-file=" + result],
                 tag="stale")
    try:
        check(not os.path.exists(result),
              what + ": removed at start-up, before any report",
              os.path.exists(result) and read(result))
        check(not srv.reports(), what + ": no report was made yet",
              tail(srv.log()))
    finally:
        srv.stop()

    what = "disk full"
    full = os.path.join(tmp, "full")
    os.mkdir(full)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755",
                        "blkhash-test-full", full], capture_output=True,
                       text=True)
    if m.returncode != 0:
        print("SKIP: %s: cannot mount a tmpfs: %s" % (what, m.stderr))
        return
    try:
        result = os.path.join(full, "sum")
        filler = os.path.join(full, "filler")
        size = MIB
        srv = Server(tmp, ["memory", "size=%d" % size],
                     ["blkhash-file=" + result], tag="full")
        try:
            def copy_and_report(run_check_too=True):
                n = len(srv.reports()) + 1
                content = os.urandom(size)
                h = srv.connect()
                h.pwrite(content, 0)
                h.shutdown()
                srv.handles.remove(h)
                # Every block is known: the report is made at the
                # disconnect; the check then has nothing left to do.
                if run_check_too:
                    srv.ask_verdict()
                srv.wait_reports(n, timeout=60)
                return content

            def file_errors():
                return [l for l in srv.log().splitlines() if "error" in l
                        and ("blkhash-file" in l or result in l)]

            first = copy_and_report()
            check(os.path.exists(result) and
                  read(result) == (reference(first) + "\n").encode(),
                  what + ": the first report writes the reference")
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\xff" * 4096)
                except OSError:
                    pass
            second = copy_and_report(run_check_too=False)
            reports = srv.reports()
            check(len(reports) >= 2
                  and reports[-1]["digest"] == reference(second),
                  what + ": the second report == reference (in the log)",
                  tail(srv.log()))
            check(wait_for(file_errors, 10), what + ": an error naming the "
                  "result file is logged", tail(srv.log()))
            check(not os.path.exists(result), what + ": a result file that "
                  "cannot be written is removed, not left stale",
                  os.path.exists(result) and read(result))
            check(os.listdir(full) == ["filler"],
                  what + ": no temporary file left", os.listdir(full))
            # Removing it freed room: a later write may succeed, but only
            # ever with the current value.
            srv.ask_verdict()
            check(not os.path.exists(result) or
                  read(result) == (reference(second) + "\n").encode(),
                  what + ": after a check, no file or the current value",
                  os.path.exists(result) and read(result))
            os.unlink(filler)
            third = copy_and_report()
            check(os.path.exists(result) and
                  read(result) == (reference(third) + "\n").encode(),
                  what + ": with room again, the next report writes it")
        finally:
            srv.stop()
    finally:
        subprocess.run(["umount", full], check=False)


# --- 8. A killed copy, then a retry -----------------------------------------------

KILLED_CLIENT = r'''
import os, signal, sys, nbd
sock, size = sys.argv[1], int(sys.argv[2])
h = nbd.NBD()
h.connect_unix(sock)
# Half the image, then garbage, then die with requests in flight.
for off in range(0, size // 2, 1 << 20):
    h.pwrite(os.urandom(1 << 20), off)
bufs = []
for off in range(size // 2, size, 1 << 20):
    buf = nbd.Buffer.from_bytearray(bytearray(os.urandom(1 << 20)))
    bufs.append(buf)
    h.aio_pwrite(buf, off)
h.poll(0)
os.kill(os.getpid(), signal.SIGKILL)
'''


def test_killed_copy(tmp):
    size = 16 * MIB
    src_data = os.urandom(size)
    src = os.path.join(tmp, "killed-src.raw")
    write(src, src_data)
    want = reference(src_data)
    client = os.path.join(tmp, "killed-client.py")
    write(client, KILLED_CLIENT.encode())
    copiers = {
        "qemu-img convert": ["qemu-img", "convert", "-n", "-f", "raw",
                             "-O", "raw", src],
        # One connection, one request: nbdkit 1.32 itself can abort
        # ("raw_send_socket: Assertion `sock >= 0' failed", with or
        # without this filter) when a multi-connection nbdcopy dies with
        # requests in flight (see test_verify.mismatch_runs).
        "nbdcopy": ["nbdcopy", "-C", "1", "-R", "1", src],
    }
    for how in ("qemu-img convert", "nbdcopy", "NBD client"):
        what = "killed copy (%s, SIGKILL), then a retry" % how
        # The delay filter below ours makes a copy take about 2 s.
        inner = ["delay"] if how in copiers else []
        srv = Server(tmp, ["memory", "size=%d" % size, "delay-write=200ms"]
                     if inner else ["memory", "size=%d" % size],
                     ["blkhash-expect=" + want], inner_filters=inner,
                     tag="killed")
        try:
            uri = "nbd+unix:///?socket=" + srv.sock
            if how in copiers:
                copy = subprocess.Popen(
                    copiers[how] + [uri], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env=ENV)
                time.sleep(0.6)
                copy.kill()
                rc = copy.wait()
            else:
                rc = subprocess.run(["/usr/bin/python3", client, srv.sock,
                                     str(size)], env=ENV, timeout=60,
                                    capture_output=True).returncode
            check(rc == -signal.SIGKILL, what + ": the first copy was "
                  "killed mid-way", rc)
            time.sleep(0.5)   # nbdkit notices the dead client
            retry = subprocess.run(["qemu-img", "convert", "-n", "-f", "raw",
                                    "-O", "raw", src, uri],
                                   capture_output=True, text=True, env=ENV,
                                   timeout=120)
            check(retry.returncode == 0, what + ": the retried copy is not "
                  "refused", retry.stderr + tail(srv.log()))
            c = srv.ask_verdict()
            check(c.returncode == 0, what + ": the check passes",
                  c.stderr + tail(srv.log()))
        finally:
            rc, log = srv.stop()
        reports = [r for r in parse_reports(log) if r["export"] == ""]
        check(reports and reports[-1]["digest"] == want
              and reports[-1].get("verdict") == "match",
              what + ": the last report == reference, verdict=match",
              tail(log))


def main():
    run_tests(test_result_file, test_killed_copy, test_many_names,
              test_probe_then_convert, test_signals, test_shared_storage)


if __name__ == "__main__":
    main()
