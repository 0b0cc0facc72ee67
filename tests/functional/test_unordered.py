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

This module also holds the helpers the other functional tests in this
directory use (Server, drive(), random_ops(), read_all()).
"""

import os
import random
import select
import signal
import subprocess
import sys
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ENV, FILTER, check, finish, forced_args, parse_reports,  # noqa: E402
                     reference, tempdir)

CRASH_WORDS = ("Segmentation", "Aborted", "core dumped", "terminate called",
               "assertion", "Assertion", "signal", "double free",
               "AddressSanitizer", "stack smashing")


class Server:
    """nbdkit with the filter (outermost) in the foreground on a Unix
    socket, its stderr going to a file.  inner_filters are placed between
    the filter and the plugin."""

    def __init__(self, tmp, plugin_args, filter_args=(), inner_filters=(),
                 tag="nbdkit"):
        self.sock = os.path.join(tmp, tag + ".sock")
        self.pidfile = os.path.join(tmp, tag + ".pid")
        self.logfile = os.path.join(tmp, tag + ".log")
        # Left by an earlier server with this tag: the pid file would make
        # us connect before this nbdkit listens.
        for path in (self.sock, self.pidfile):
            if os.path.exists(path):
                os.unlink(path)
        cmd = ["nbdkit", "-U", self.sock, "-P", self.pidfile, "-f",
               "--exit-with-parent", "--filter=" + FILTER,
               *["--filter=" + f for f in inner_filters],
               *plugin_args, *filter_args, *forced_args()]
        self.log_fd = open(self.logfile, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.log_fd,
                                     stderr=subprocess.STDOUT, env=ENV)
        deadline = time.time() + 30
        while not os.path.exists(self.pidfile):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("nbdkit did not start: %s\n%s" %
                                   (cmd, self.log()))
            time.sleep(0.02)
        self.result = None
        self.handles = []

    def connect(self, export=""):
        h = nbd.NBD()
        h.set_export_name(export)
        h.connect_unix(self.sock)
        self.handles.append(h)
        return h

    def log(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def reports(self):
        return parse_reports(self.log())

    def wait_reports(self, n, timeout=120):
        """Waits until the log holds at least n report lines."""
        deadline = time.time() + timeout
        while True:
            reports = self.reports()
            if len(reports) >= n or time.time() > deadline:
                return reports
            if self.proc.poll() is not None:
                return reports
            time.sleep(0.02)

    def ask_verdict(self, timeout=120):
        """The check idiom, `nbdinfo --list`, against this server: it waits
        until no connection with data requests is attached and makes every
        report that is due before it answers.  Returns the
        CompletedProcess (exit status 0 exactly when every verdict is
        match or computed)."""
        return subprocess.run(
            ["nbdinfo", "--list", "nbd+unix:///?socket=" + self.sock],
            capture_output=True, text=True, env=ENV, timeout=timeout)

    def settle(self):
        """Every report that is due, made (ask_verdict); returns all the
        reports so far."""
        self.ask_verdict()
        return self.reports()

    def read_back(self, export=""):
        """Reads the whole export on a new connection, disconnects, and
        makes the reports that are then due (settle()).  Returns the
        content read."""
        h = self.connect(export)
        content = read_all(h)
        h.shutdown()
        self.handles.remove(h)
        self.settle()
        return content

    def stop(self, timeout=300):
        """SIGTERM, wait for the exit (the cleanup report runs first).
        Returns (exit status, log)."""
        if self.result is None:
            # nbdkit waits for its clients: disconnect any left open
            # (by a test that failed half-way).
            for h in self.handles:
                try:
                    h.shutdown()
                except nbd.Error:
                    pass
            self.handles = []
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = "timeout"
                self.proc.wait()
            self.log_fd.close()
            self.result = (rc, self.log())
        return self.result


def close(handles):
    for h in handles:
        h.shutdown()


def random_file_server(tmp, rng, size, digest, bs):
    """A Server for the file plugin over a new file of `size` random
    bytes, with the filter's digest and block size set."""
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
    return path, Server(tmp, ["file", "file=" + path],
                        ["blkhash-digest=" + digest,
                         "blkhash-block-size=%d" % bs])


def random_ops(rng, size, count, mix, max_len, seed_data=True):
    """count random ops over [0, size): (kind, offset, length_or_data,
    flags).  mix maps kind -> weight; kinds: write, zero, trim, read."""
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    ops = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        length = rng.randint(1, min(max_len, size))
        offset = rng.randrange(0, size - length + 1)
        flags = 0
        if kind == "write":
            if rng.random() < 0.1:
                flags |= nbd.CMD_FLAG_FUA
            ops.append(("write", offset, rng.randbytes(length), flags))
        elif kind == "zero":
            r = rng.random()
            if r < 0.3:
                flags |= nbd.CMD_FLAG_NO_HOLE
            elif r < 0.4:
                flags |= nbd.CMD_FLAG_FAST_ZERO
            ops.append(("zero", offset, length, flags))
        else:
            ops.append((kind, offset, length, flags))
    return ops


def _submit(h, op):
    kind, offset, arg, flags = op
    if kind == "write":
        buf = nbd.Buffer.from_bytearray(bytearray(arg))
        return h.aio_pwrite(buf, offset, flags=flags), buf
    if kind == "read":
        buf = nbd.Buffer(arg)
        return h.aio_pread(buf, offset), buf
    if kind == "zero":
        if not h.can_fast_zero():
            flags &= ~nbd.CMD_FLAG_FAST_ZERO
        return h.aio_zero(arg, offset, flags=flags), None
    if kind == "trim":
        return h.aio_trim(arg, offset, flags=flags), None
    raise ValueError(kind)


def drive(handles, op_lists, depth, submit_errors_ok=False):
    """Runs op_lists[i] on handles[i], keeping up to `depth` requests in
    flight on each handle, all handles at once from one select() loop.
    Returns (succeeded, failed, error messages)."""
    pending = [list(reversed(ops)) for ops in op_lists]
    inflight = [dict() for _ in handles]
    ok = failed = 0
    errors = []
    dead = [False] * len(handles)
    while True:
        for i, h in enumerate(handles):
            while not dead[i] and pending[i] and len(inflight[i]) < depth:
                op = pending[i].pop()
                try:
                    cookie, buf = _submit(h, op)
                except nbd.Error as e:
                    if not submit_errors_ok:
                        raise
                    failed += 1
                    errors.append(str(e))
                    if not h.aio_is_ready() and not h.aio_is_processing():
                        dead[i] = True
                    continue
                inflight[i][cookie] = buf
        for i, h in enumerate(handles):
            while inflight[i]:
                cookie = h.aio_peek_command_completed()
                if cookie <= 0:
                    break
                try:
                    h.aio_command_completed(cookie)
                    ok += 1
                except nbd.Error as e:
                    failed += 1
                    errors.append(str(e))
                del inflight[i][cookie]
        if not any(inflight) and not any(
                p for p, d in zip(pending, dead) if not d):
            return ok, failed, errors
        readers, writers, owner = [], [], {}
        for i, h in enumerate(handles):
            if not inflight[i]:
                continue
            fd = h.aio_get_fd()
            owner[fd] = h
            d = h.aio_get_direction()
            if d & nbd.AIO_DIRECTION_READ:
                readers.append(fd)
            if d & nbd.AIO_DIRECTION_WRITE:
                writers.append(fd)
        r, w, _ = select.select(readers, writers, [], 1.0)
        for fd in r:
            owner[fd].aio_notify_read()
        for fd in w:
            if owner[fd].aio_get_direction() & nbd.AIO_DIRECTION_WRITE:
                owner[fd].aio_notify_write()


def read_all(h, chunk=4 << 20):
    size = h.get_size()
    out = bytearray()
    for offset in range(0, size, chunk):
        out += h.pread(min(chunk, size - offset), offset)
    return bytes(out)


def no_crash(rc, log, what):
    check(rc == 0, what + ": nbdkit exit status 0", "status %r\n%s" %
          (rc, log[-3000:]))
    bad = [w for w in CRASH_WORDS if w in log]
    check(not bad, what + ": no crash in nbdkit's log", "%s\n%s" %
          (bad, log[-3000:]))


def size_name(n):
    return "%dK" % (n // 1024) if n < 1 << 20 else "%dM" % (n >> 20)


# --- Cases --------------------------------------------------------------------

MIXED = {"write": 60, "zero": 15, "trim": 15, "read": 10}
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
