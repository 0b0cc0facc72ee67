"""NBD traffic for the functional tests: nbdkit with the filter in the
background (Server), and drivers that keep many asynchronous requests in
flight on several connections at once (random_ops(), drive()).

Each test that talks NBD itself (libnbd's Python module, so it runs with
/usr/bin/python3) uses these; harness.py has what every test uses (check,
the reference, nbdkit run to completion, the crash words).
"""

import os
import select
import signal
import subprocess
import time

import nbd

from harness import ENV, FILTER, forced_args, parse_reports


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


MIXED = {"write": 60, "zero": 15, "trim": 15, "read": 10}
