#!/usr/bin/python3
"""Benchmark suite for nbdkit-blkhash-filter.

Every case runs WITH the filter (A) and WITHOUT it (B), interleaved
A B A B ... in one run, so slow drift of the machine affects both sides
alike.  The medians are reported.  See bench/README.md for the method.

Started by bench/run, which installs the tools and builds the filter.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(TOP, "bench", "results")
DEFAULT_FILTER = os.path.join(TOP, "build", "filter", "nbdkit-blkhash-filter.so")

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
BLOCK = 64 * KiB            # the filter's default block size, used throughout
DIGEST_SIZE = {"sha256": 32, "xxh128": 16, "blake2b512": 64}

# A blkhash report; with blkhash-digest=none (the whole-image digest
# alone) the label has no block size and there are no hashed=/read=.
REPORT_RE = re.compile(
    r'blkhash: (?P<digest>[\w-]+)(?:/(?P<bs>\w+))? '
    r'(?P<hex>[0-9a-f]+|incomplete) '
    r'export="[^"]*" size=(?P<size>\d+)'
    r'(?: hashed=(?P<hashed>\d+) read=(?P<read>\d+))?')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# Measuring one run
# ---------------------------------------------------------------------------

def cpu_of(ru):
    return ru.ru_utime + ru.ru_stime


def kill_own(proc):
    """Stop a process this script started (by its pid) and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


FIELD_RE = re.compile(r'([\w-]+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_reports(text):
    """The report lines in TEXT: the fixed fields, and in "fields" every
    key=value of the line (whole=, whole-read=, bad-blocks=, ...)."""
    out = []
    for m in REPORT_RE.finditer(text):
        r = m.groupdict()
        end = text.find("\n", m.start())
        line = text[m.start():end if end >= 0 else len(text)]
        r["fields"] = {k: v.strip('"') for k, v in FIELD_RE.findall(line)}
        out.append(r)
    return out


class Runner:
    def __init__(self, args):
        self.args = args
        self.rundir = os.path.join(args.workdir, "run")
        os.makedirs(self.rundir, exist_ok=True)
        self.sock = os.path.join(self.rundir, "nbd.sock")
        self.pidfile = os.path.join(self.rundir, "nbdkit.pid")
        self.logfile = os.path.join(self.rundir, "nbdkit.log")
        self.clientlog = os.path.join(self.rundir, "client.log")

    def served(self, plugin, plugin_args, client, digest=None, readonly=False,
               filter_extra=(), inner_filters=(), report_on_exit=False,
               timeout=900):
        """nbdkit serves PLUGIN on a unix socket; CLIENT(uri) is run apart.

        Timed from the client's start to nbdkit's exit: when filtered, we
        wait for the report line (the report is made when the last
        connection closes), read nbdkit's VmHWM (its peak RSS: all the
        filter's work is done by then), send SIGTERM and reap nbdkit with
        wait4.  CPU is user+sys of the client (with its children) and of
        nbdkit, from wait4.  INNER_FILTERS, [(name, [params])], go between
        the blkhash filter and the plugin, on both sides (e.g. the log
        filter, to see what reaches the plugin).

        REPORT_ON_EXIT: the client leaves part of the export unread (a
        qcow2 file read by qemu-img), so the filter makes its report when
        nbdkit shuts down, reading the rest: SIGTERM is sent as soon as the
        client has finished, and VmHWM is sampled every few milliseconds
        until nbdkit exits (on both sides alike)."""
        for p in (self.sock, self.pidfile):
            remove_if_present(p)
        cmd = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock,
               "-P", self.pidfile]
        if readonly:
            cmd.append("-r")
        params = []
        if digest:
            cmd.append(f"--filter={self.args.filter}")
            params = [f"blkhash-digest={digest}", *filter_extra]
        for name, fparams in inner_filters:
            cmd.append(f"--filter={name}")
            params += fparams
        cmd += [plugin, *plugin_args, *params]
        with open(self.logfile, "w") as logf:
            srv = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                   stdout=logf, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not (os.path.exists(self.pidfile)
                       and os.path.getsize(self.pidfile) > 0):
                if srv.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("nbdkit did not start: %s\n%s" % (
                        " ".join(cmd), open(self.logfile).read()))
                time.sleep(0.005)
            uri = f"nbd+unix:///?socket={self.sock}"
            ccmd = client(uri)
            with open(self.clientlog, "w") as clog:
                t0 = time.perf_counter()
                cli = subprocess.Popen(ccmd, stdin=subprocess.DEVNULL,
                                       stdout=clog, stderr=subprocess.STDOUT)
                _, cstatus, cru = os.wait4(cli.pid, 0)
                cli.returncode = os.waitstatus_to_exitcode(cstatus)
            if cli.returncode != 0:
                raise BenchError("client failed (%d): %s\n%s" % (
                    cli.returncode, " ".join(ccmd), open(self.clientlog).read()))
            if digest and not report_on_exit:
                # The report is made when the last connection closes.
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and srv.poll() is None:
                    with open(self.logfile) as f:
                        if parse_reports(f.read()):
                            break
                    time.sleep(0.002)
            hwm = vm_hwm_kib(srv.pid)
            srv.send_signal(signal.SIGTERM)
            if report_on_exit:
                while True:
                    pid, sstatus, sru = os.wait4(srv.pid, os.WNOHANG)
                    if pid:
                        break
                    hwm = max(hwm or 0, vm_hwm_kib(srv.pid) or 0)
                    time.sleep(0.004)
            else:
                _, sstatus, sru = os.wait4(srv.pid, 0)
            t1 = time.perf_counter()
            srv.returncode = os.waitstatus_to_exitcode(sstatus)
        finally:
            kill_own(srv)
        text = open(self.logfile).read()
        if srv.returncode != 0:
            raise BenchError("nbdkit exited with %d: %s\n%s" % (
                srv.returncode, " ".join(cmd), text))
        if hwm is None:
            raise BenchError("could not read VmHWM of nbdkit")
        # Not sru.ru_maxrss: Linux carries the high-water mark of the
        # process that forked (this Python) across exec into ru_maxrss.
        result = {
            "seconds": t1 - t0,
            "cpu": cpu_of(cru) + cpu_of(sru),
            "cpu_nbdkit": cpu_of(sru),
            "rss_kib": hwm,
            "client_output": open(self.clientlog).read(),
        }
        if digest:
            result["report"] = self.check_report(text, cmd)
        return result

    def check_report(self, text, cmd):
        reports = parse_reports(text)
        if not reports:
            raise BenchError("no blkhash report: %s\n%s" % (" ".join(cmd), text))
        if any(r["hex"] == "incomplete" for r in reports):
            raise BenchError("incomplete report: %s\n%s" % (" ".join(cmd), text))
        return reports[-1]

    def selfrun(self, plugin, plugin_args, digest, filter_extra=()):
        """nbdkit -r --filter=blkhash PLUGIN ... --run true: the filter
        reads the whole export at shutdown.  Timed over nbdkit's life;
        wait4 gives nbdkit's rusage with its reaped children (the shell
        running `true`).  The report is made during shutdown, so VmHWM is
        sampled every few milliseconds until nbdkit exits."""
        cmd = ["nbdkit", "--exit-with-parent", "-r",
               f"--filter={self.args.filter}", plugin, *plugin_args,
               f"blkhash-digest={digest}", *filter_extra, "--run", "true"]
        with open(self.logfile, "w") as logf:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT)
            hwm = 0
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                hwm = max(hwm, vm_hwm_kib(p.pid) or 0)
                time.sleep(0.004)
            t1 = time.perf_counter()
            p.returncode = os.waitstatus_to_exitcode(status)
        text = open(self.logfile).read()
        if p.returncode != 0:
            raise BenchError("nbdkit failed: %s\n%s" % (" ".join(cmd), text))
        return {"seconds": t1 - t0, "cpu": cpu_of(ru), "cpu_nbdkit": cpu_of(ru),
                "rss_kib": hwm, "report": self.check_report(text, cmd)}

    def tool(self, argv):
        """A reference tool such as `openssl dgst -sha256 FILE`."""
        with open(self.clientlog, "w") as clog:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=clog,
                                 stderr=subprocess.STDOUT)
            _, status, ru = os.wait4(p.pid, 0)
            t1 = time.perf_counter()
        if os.waitstatus_to_exitcode(status) != 0:
            raise BenchError("%s failed:\n%s" % (" ".join(argv),
                                                 open(self.clientlog).read()))
        return {"seconds": t1 - t0, "cpu": cpu_of(ru), "cpu_nbdkit": None,
                "rss_kib": None,
                "output": open(self.clientlog).read().strip()}


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------

def keystream(iv_byte):
    """Deterministic incompressible bytes: AES-128-CTR of zeros."""
    return subprocess.Popen(
        ["openssl", "enc", "-aes-128-ctr", "-K", "00" * 16,
         "-iv", "%02x" % iv_byte * 16, "-in", "/dev/zero"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)


def read_exact(f, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            raise BenchError("openssl keystream ended early")
        buf += chunk
    return bytes(buf)


def sparse_layout(virtual, data):
    """16 MiB runs spread evenly over the image, each 1 MiB-aligned."""
    run = 16 * MiB
    n = data // run
    stride = virtual // n
    return [(i * stride + (i * 5 % 16) * MiB, run) for i in range(n)]


def image_paths(args, cfg):
    """The images of the suite, in the work dir."""
    dense = os.path.join(args.workdir, "data-%dG.raw" % (cfg["dense"] // GiB))
    sparse = os.path.join(args.workdir, "sparse-%dG-%dM.raw" % (
        cfg["sparse_virtual"] // GiB, cfg["sparse_data"] // MiB))
    qcow2 = os.path.join(args.workdir, "src-%dG.qcow2" % (cfg["dense"] // GiB))
    return dense, sparse, qcow2


def make_images(args, cfg, need_qcow2=False, need_sparse=True):
    os.makedirs(args.workdir, exist_ok=True)
    dense, sparse, qcow2 = image_paths(args, cfg)
    stamp_ok = lambda p: os.path.exists(p + ".ok")

    if not (os.path.exists(dense) and stamp_ok(dense)
            and os.path.getsize(dense) == cfg["dense"]):
        log(f"bench: generating {dense} ({cfg['dense'] // GiB} GiB incompressible)")
        t = time.monotonic()
        ks = keystream(0)
        with open(dense + ".tmp", "wb") as out:
            left = cfg["dense"]
            while left:
                chunk = read_exact(ks.stdout, min(left, 16 * MiB))
                out.write(chunk)
                left -= len(chunk)
        kill_own(ks)
        os.rename(dense + ".tmp", dense)
        open(dense + ".ok", "w").close()
        log("bench:   %.1f s" % (time.monotonic() - t))

    if need_sparse and not (os.path.exists(sparse) and stamp_ok(sparse)
            and os.path.getsize(sparse) == cfg["sparse_virtual"]):
        log(f"bench: generating {sparse} ({cfg['sparse_virtual'] // GiB} GiB "
            f"virtual, {cfg['sparse_data'] // MiB} MiB data)")
        ks = keystream(1)
        fd = os.open(sparse + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, cfg["sparse_virtual"])
            for off, length in sparse_layout(cfg["sparse_virtual"], cfg["sparse_data"]):
                os.pwrite(fd, read_exact(ks.stdout, length), off)
        finally:
            os.close(fd)
        kill_own(ks)
        os.rename(sparse + ".tmp", sparse)
        open(sparse + ".ok", "w").close()

    # The dense image as a qcow2 file (the seed's source, and what the
    # source, download and map cases read): made from the raw image by
    # qemu-img, so it is the same guest data.
    if need_qcow2 and not (os.path.exists(qcow2) and stamp_ok(qcow2)
                           and os.path.getmtime(qcow2) >= os.path.getmtime(dense)):
        log(f"bench: converting {dense} to {qcow2}")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                        dense, qcow2 + ".tmp"], check=True)
        os.rename(qcow2 + ".tmp", qcow2)
        open(qcow2 + ".ok", "w").close()
    return dense, sparse, qcow2


def remove_if_present(path):
    if os.path.exists(path):
        os.unlink(path)


def fresh_sparse(path, size):
    """PATH recreated empty and sparse, SIZE bytes long."""
    remove_if_present(path)
    with open(path, "wb") as f:
        f.truncate(size)


def warm(path, virtual=None, data=None):
    """Pull the image's data into the page cache (holes are not read)."""
    with open(path, "rb", buffering=0) as f:
        if virtual is None:
            while f.read(16 * MiB):
                pass
        else:
            for off, length in sparse_layout(virtual, data):
                os.pread(f.fileno(), length, off)


# ---------------------------------------------------------------------------
# Helpers of the download, map and peer cases
# ---------------------------------------------------------------------------

HTTP_SERVER = os.path.join(TOP, "tests", "functional", "range_http_server.py")
HTTP_LOG_RE = re.compile(r"^(GET|HEAD) (\S+) (\S+) (\d+)$")


class HttpServer:
    """The tests' loopback HTTP server with byte ranges
    (tests/functional/range_http_server.py, run as a script), serving the
    work dir.  Started once, on first use; stopped by stop().  It logs
    every request as "METHOD PATH RANGE STATUS"; sent() turns the log
    into the bytes of response bodies sent since reset()."""

    def __init__(self, directory, logfile):
        self.directory, self.logfile = directory, logfile
        self.proc, self.port = None, None

    def start(self):
        if self.proc is not None:
            return
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", HTTP_SERVER, self.directory,
             "--log", self.logfile],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            kill_own(self.proc)
            raise BenchError("the HTTP server did not start (%s)" % HTTP_SERVER)
        self.port = int(line)

    def url(self, path):
        self.start()
        return "http://127.0.0.1:%d/%s" % (self.port, os.path.basename(path))

    def reset(self):
        open(self.logfile, "w").close()

    def sent(self, size):
        """(body bytes sent, GET requests) since reset(), for a file of
        SIZE bytes: a 206 sends its range, a 200 the whole file, HEAD
        nothing."""
        total = gets = 0
        time.sleep(0.05)     # the last request's line follows its body
        with open(self.logfile) as f:
            for line in f:
                m = HTTP_LOG_RE.match(line.strip())
                if not m or m.group(1) != "GET":
                    continue
                gets += 1
                rng, status = m.group(3), int(m.group(4))
                if status == 200:
                    total += size
                elif status == 206:
                    a, b = re.match(r"bytes=(\d*)-(\d*)$", rng).groups()
                    if a:
                        end = min(int(b), size - 1) if b else size - 1
                        total += end - int(a) + 1
                    else:
                        total += min(int(b), size)
        return total, gets

    def stop(self):
        if self.proc is not None:
            kill_own(self.proc)
            self.proc = None


LOG_READ_RE = re.compile(r"\bRead id=\d+ offset=0x([0-9a-f]+) count=0x([0-9a-f]+)")
LOG_CONN_RE = re.compile(r"\bconnection=(\d+) (Connect|Disconnect|Read) ")


def plugin_reads(logfile):
    """(bytes, requests, client requests) of the reads nbdkit's log filter
    saw.  Client requests are those of the connections made before the
    first moment no connection was open: the report at shutdown reads
    through a connection of its own, opened after the client left."""
    total = n = clients = 0
    client_conns, open_conns, settled = set(), 0, False
    with open(logfile) as f:
        for line in f:
            c = LOG_CONN_RE.search(line)
            if c and c.group(2) == "Connect":
                open_conns += 1
                if not settled:
                    client_conns.add(c.group(1))
            elif c and c.group(2) == "Disconnect":
                open_conns -= 1
                settled = settled or open_conns == 0
            m = LOG_READ_RE.search(line)
            if m:
                total += int(m.group(2), 16)
                n += 1
                clients += bool(c and c.group(1) in client_conns)
    return total, n, clients


def nbdcopy_has_blkhash(rundir):
    """True if this nbdcopy computes blkhash (libnbd 1.24 and later):
    the known answer for the empty image, sha256/64K."""
    empty = os.path.join(rundir, "probe-empty.raw")
    open(empty, "wb").close()
    try:
        p = subprocess.run(["nbdcopy", "--blkhash=sha256/64k", "--", empty,
                            "null:"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        os.unlink(empty)
    return p.returncode == 0 and p.stdout.strip() == (
        "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc")


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

# Labels for the plot.
SHORT = {
    "nbdcopy-null": "nbdcopy→null",
    "nbdcopy-memory": "nbdcopy→memory",
    "qemu-img": "qemu-img→null",
    "qemu-img-W": "qemu-img -W -m16→null",
    "nbdcopy-file-verify": "nbdcopy→file verify",
    "nbdcopy-read": "read path nbdcopy",
    "sparse": "sparse nbdcopy→null",
    "readback": "read-back vs tool",
    "memory": "memory sparse-random→null",
    "memory-nofold": "memory, blkhash-fold=false",
    "seed": "seed qcow2→file",
    "source": "source qcow2 read",
    "download": "download curl qcow2",
    "map-read": "qcow2 read, expect-map",
    "map-write": "read-back + map",
    "peer": "vs nbdcopy --blkhash",
}


def build_cases(args, cfg, runner, http):
    """Each case: name, digest, virtual size, kind, and how to run a side."""
    dense, sparse, qcow2 = image_paths(args, cfg)
    D = cfg["dense"]
    ds = str(D)
    out = os.path.join(args.workdir, "out.raw")
    cases = []

    def add(group, name, digests, size, run=None, prepare=None, kind="stream",
            sides=None, labels=("with filter", "without filter"),
            image="raw", display="ratio", short=None, **kw):
        """A case per digest.  RUN(runner, digest or None) runs side A
        (the filter with DIGEST) or side B (None: no filter); a case whose
        sides differ otherwise gives SIDES = {"filter": f, "nofilter": g},
        each f(runner, digest) -> a run's result.  IMAGE names the bytes
        the filter hashes ("raw": the dense image, "qcow2": its qcow2
        file, None: an image of its own), for the checksum cross-check.
        DISPLAY "faster" shows the ratio as "x faster" (side B is a
        reference tool)."""
        if sides is None:
            sides = {"filter": lambda r, dg, run=run: run(r, dg),
                     "nofilter": lambda r, dg, run=run: run(r, None)}
        for d in digests:
            cases.append(dict(group=group, name=name,
                              short=short or SHORT[group], digest=d, size=size,
                              sides=sides, labels=labels, image=image,
                              display=display, prepare=prepare, kind=kind,
                              **kw))

    both = ["sha256", "xxh128"]

    add("nbdcopy-null", "nbdcopy → null", both + ["blake2b512"], D,
        lambda r, dg: r.served("null", [ds], lambda u: ["nbdcopy", dense, u], dg))
    add("nbdcopy-memory", "nbdcopy → memory", both, D,
        lambda r, dg: r.served("memory", [ds], lambda u: ["nbdcopy", dense, u], dg))
    add("qemu-img", "qemu-img convert → null", both, D,
        lambda r, dg: r.served("null", [ds], lambda u: [
            "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", dense, u], dg))
    add("qemu-img-W", "qemu-img convert -W -m 16 → null", both, D,
        lambda r, dg: r.served("null", [ds], lambda u: [
            "qemu-img", "convert", "-n", "-W", "-m", "16", "-f", "raw",
            "-O", "raw", dense, u], dg))

    def fresh_out():
        fresh_sparse(out, D)

    add("nbdcopy-file-verify", "nbdcopy → file, blkhash-verify=true", both, D,
        # A report that reads is made at a check or at shutdown, not when
        # the client disconnects: SIGTERM, and time nbdkit's exit.
        lambda r, dg: r.served("file", [out], lambda u: ["nbdcopy", dense, u], dg,
                               filter_extra=["blkhash-verify=true"],
                               report_on_exit=True),
        prepare=fresh_out)
    add("nbdcopy-read", "nbdcopy file → null: (read path)", both, D,
        lambda r, dg: r.served("file", [dense], lambda u: ["nbdcopy", u, "null:"],
                               dg, readonly=True))
    add("sparse", "nbdcopy sparse %d GiB (%d MiB data) → null" % (
        cfg["sparse_virtual"] // GiB, cfg["sparse_data"] // MiB), both,
        cfg["sparse_virtual"],
        lambda r, dg: r.served("null", [str(cfg["sparse_virtual"])],
                               lambda u: ["nbdcopy", sparse, u], dg),
        image=None)

    # Read-back: the filter reads the whole file at shutdown, compared with
    # a plain digest tool over the same (page-cached) file.
    refs = {"sha256": ["openssl", "dgst", "-sha256", dense]}
    if shutil.which("xxhsum"):
        refs["xxh128"] = ["xxhsum", "-H2", dense]
    for dg, ref in refs.items():
        add("readback", "read-back `--run true` vs `%s`" % " ".join(ref[:-1]),
            [dg], D, kind="readback", ref=ref, display="faster",
            labels=("filter", " ".join(ref[:-1])),
            sides={"filter": lambda r, dg: r.selfrun("file", [dense], dg),
                   "nofilter": lambda r, dg, ref=ref: r.tool(ref)})

    # Memory: a huge null export receiving sparse-random data.
    mv, mp = cfg["mem_virtual"], 1.5625
    src = ["nbdkit", "sparse-random", "%dG" % (mv // GiB),
           "percent=%s" % mp, "seed=1"]
    add("memory", "memory: nbdcopy sparse-random %s → null %s" % (
        human(mv), human(mv)), both, mv,
        lambda r, dg: r.served("null", [str(mv)],
                               lambda u: ["nbdcopy", "--", "[", *src, "]", u], dg),
        kind="memory", reps=cfg["mem_reps"], image=None,
        nominal_data=int(mv * mp / 100))
    # The same without folding the settled prefix: the table keeps every
    # leaf until the report.
    add("memory-nofold", "memory: the same, blkhash-fold=false", both, mv,
        lambda r, dg: r.served("null", [str(mv)],
                               lambda u: ["nbdcopy", "--", "[", *src, "]", u], dg,
                               filter_extra=["blkhash-fold=false"]),
        kind="memory", reps=cfg["mem_reps"], image=None,
        nominal_data=int(mv * mp / 100))

    # --- The user's view (issues 15, 16, 17) -------------------------------
    # Over the qcow2 file made from the dense image.  Throughput is still
    # the virtual size (the raw disk) over the wall time.  The raw output
    # of these cases goes to --outdir (tmpfs by default): page-cached, and
    # never written back to a disk in the middle of a run.
    uout = os.path.join(args.outdir, "blkhash-bench-out.raw")

    def fresh_uout():
        fresh_sparse(uout, D)

    def no_uout():
        remove_if_present(uout)

    # The seed's own command: qcow2 -> raw, written into the file plugin
    # (out.raw recreated empty and sparse before each run, page-cached).
    # The filter hashes the raw bytes written: the raw image's checksum.
    add("seed", "seed: `qemu-img convert -n -f qcow2 -O raw` → file",
        both, D,
        lambda r, dg: r.served("file", [uout], lambda u: [
            "qemu-img", "convert", "-n", "-f", "qcow2", "-O", "raw", qcow2, u],
            dg),
        prepare=fresh_uout, needs_qcow2=True,
        judge=lambda s: [(("sha256 seed ratio ≥ 0.90" if s["digest"] == "sha256"
                           else "xxh128 seed ratio ≥ 0.95"), "%.2f" % s["ratio"],
                          s["ratio"] >= (0.90 if s["digest"] == "sha256" else 0.95))])

    # The source side: qemu-img reads the qcow2 file through the filter
    # and writes out.raw itself.  The filter hashes the qcow2 file's bytes
    # (the report reads what qemu-img does not: refcounts, free clusters).
    qemu_read = lambda u: ["qemu-img", "convert", "-f", "qcow2", u,
                           "-O", "raw", uout]
    add("source", "source: `qemu-img convert -f qcow2 $uri -O raw` ← file",
        ["sha256"], D,
        lambda r, dg: r.served("file", [qcow2], qemu_read, dg, readonly=True,
                               report_on_exit=True),
        prepare=no_uout, image="qcow2", needs_qcow2=True,
        judge=lambda s: [("sha256 source ratio ≥ 0.80", "%.2f" % s["ratio"],
                          s["ratio"] >= 0.80)])

    # A download: the curl plugin reads the qcow2 file from the loopback
    # HTTP server; the server's log gives the bytes it sent.
    def download(r, dg, extra=()):
        http.reset()
        res = r.served("curl", [http.url(qcow2)], qemu_read, dg,
                       readonly=True, filter_extra=extra, report_on_exit=True)
        res["http_bytes"], res["http_gets"] = http.sent(os.path.getsize(qcow2))
        return res

    def judge_download(s):
        q = s["qcow2_size"]
        sent = max(s["http_bytes"]) / q
        lines = [("download: bytes sent / file size (informational)",
                  "%.3f (A) %.3f (B)" % (sent, max(s["http_bytes_b"]) / q), None)]
        if s.get("whole") is None:
            lines.append(("download ratio (informational)", "%.2f" % s["ratio"], None))
            return lines
        t_b, t_sha = s["nofilter"]["seconds"], s["probe_seconds"]
        ceiling = t_b / (t_b + t_sha)
        lines = [("download + whole: bytes sent ≤ 1.05 × file size",
                  "%.3f (A) %.3f (B)" % (sent, max(s["http_bytes_b"]) / q),
                  sent <= 1.05),
                 ("download + whole: SHA-256 ceiling t_B / (t_B + t_sha) "
                  "(informational)", "%.2f (t_sha %.2f s: sha256sum %.2f s, "
                  "openssl %.2f s)" % (ceiling, t_sha, s["sha256sum_seconds"],
                                       s["openssl_seconds"]), None),
                 ("download + whole: ratio ≥ 0.9 × ceiling",
                  "%.2f ≥ %.2f" % (s["ratio"], 0.9 * ceiling),
                  s["ratio"] >= 0.9 * ceiling),
                 ("download + whole: whole= equals sha256sum",
                  "whole-read=%d" % s["whole_read"], s["whole_ok"])]
        return lines

    def sha_probe(r):
        """One core of SHA-256 over the (page-cached) qcow2 file:
        sha256sum (coreutils; on Debian 12 without SHA-NI) and openssl
        dgst -sha256 (with SHA-NI where the CPU has it)."""
        a = r.tool(["sha256sum", qcow2])
        b = r.tool(["openssl", "dgst", "-sha256", "-r", qcow2])
        return {"seconds": min(a["seconds"], b["seconds"]),
                "sha256sum_seconds": a["seconds"],
                "openssl_seconds": b["seconds"],
                "output": a["output"], "openssl_output": b["output"]}

    add("download", "download: curl ← HTTP, `qemu-img convert -f qcow2 $uri -O raw`",
        ["sha256"], D, lambda r, dg: download(r, dg),
        prepare=no_uout, image="qcow2", needs_qcow2=True, judge=judge_download,
        qcow2_size=lambda: os.path.getsize(qcow2))
    # The whole-image digest beside the blkhash, and alone
    # (blkhash-digest=none): what a user holding only a SHA256SUMS line runs.
    for name, digest, short in (
            ("download, also `blkhash-whole=sha256`", "sha256",
             "download +whole"),
            ("download, `blkhash-digest=none blkhash-whole=sha256`", "none",
             "download whole alone")):
        add("download", name, [digest], D,
            lambda r, dg: download(r, dg, ["blkhash-whole=sha256"]),
            prepare=no_uout, image="qcow2", needs_qcow2=True,
            judge=judge_download, short=short, whole="sha256",
            qcow2_size=lambda: os.path.getsize(qcow2), probe=sha_probe)

    # Per-block verification on the read side: the source case with
    # blkhash-expect-map (A) and without it (B), both with nbdkit's log
    # filter under the blkhash filter, which sees every read the plugin
    # gets.  The map is made once per suite run, by the filter itself.
    srcmap = os.path.join(args.workdir, "src-%dG-sha256.map" % (D // GiB))
    plog = os.path.join(runner.rundir, "plugin-reads.log")

    def make_map():
        remove_if_present(srcmap)
        subprocess.run(["nbdkit", "-r", f"--filter={args.filter}", "file", qcow2,
                        "blkhash-digest=sha256", f"blkhash-map={srcmap}",
                        "--run", "true"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if not os.path.exists(srcmap):
            raise BenchError("no map written at " + srcmap)

    def map_read(r, dg, with_map):
        remove_if_present(plog)
        extra = [f"blkhash-expect-map={srcmap}"] if with_map else []
        res = r.served("file", [qcow2], qemu_read, dg, readonly=True,
                       filter_extra=extra, report_on_exit=True,
                       inner_filters=[("log", [f"logfile={plog}"])])
        res["plugin_read"], res["plugin_reads"], res["client_reads"] = \
            plugin_reads(plog)
        return res

    def judge_map_read(s):
        a, b = s["traffic_read"], s["traffic_read_b"]
        extra, reqs = a - b, s["client_reads"]
        bound = 2 * BLOCK * reqs
        return [("map-read: extra bytes read ≤ one block per request edge",
                 "%d ≤ %d (%d reads)" % (extra, bound, reqs),
                 0 <= extra <= bound),
                ("map-read: time ratio with / without the map (informational)",
                 "%.2f" % s["ratio"], None)]

    add("map-read", "map-read: source case, `blkhash-expect-map` vs none",
        ["sha256"], D,
        sides={"filter": lambda r, dg: map_read(r, dg, True),
               "nofilter": lambda r, dg: map_read(r, dg, False)},
        labels=("filter + blkhash-expect-map", "filter, no map"),
        prepare=no_uout, image="qcow2", needs_qcow2=True, once=make_map,
        judge=judge_map_read, count_reads=True)

    # Writing a map: the read-back with blkhash-map (A) and without (B).
    dmap = os.path.join(runner.rundir, "data.map")

    def with_map(r, dg):
        remove_if_present(dmap)
        res = r.selfrun("file", [dense], dg, [f"blkhash-map={dmap}"])
        if not os.path.getsize(dmap):
            raise BenchError("empty map " + dmap)
        return res

    add("map-write", "map-write: read-back `--run true`, `blkhash-map=FILE` vs none",
        ["sha256"], D,
        sides={"filter": with_map,
               "nofilter": lambda r, dg: r.selfrun("file", [dense], dg)},
        labels=("filter + blkhash-map", "filter, no map"),
        reps=max(args.reps, 5),     # 0.3 s a run: more of them, for 1 %
        judge=lambda s: [("map-write: ratio ≥ 0.99 (within noise)",
                          "%.3f" % s["ratio"], s["ratio"] >= 0.99)])

    # Head to head with nbdcopy --blkhash (libnbd 1.24 and later; on this
    # project: bench/run --distro forky --case peer).
    def peer_copy(r, dg):
        res = r.served("null", [ds], lambda u: [
            "nbdcopy", f"--blkhash={dg}/64k", dense, u], None)
        res["checksum"] = res["client_output"].strip()
        return res

    def peer_sum(r, dg):
        res = r.tool(["nbdcopy", f"--blkhash={dg}/64k", dense, "null:"])
        res["checksum"] = res["output"]
        return res

    add("peer", "peer: `nbdcopy SRC $uri` → null through the filter vs "
        "`nbdcopy --blkhash SRC $uri` → null", ["sha256"], D,
        sides={"filter": lambda r, dg: r.served(
                   "null", [ds], lambda u: ["nbdcopy", dense, u], dg),
               "nofilter": peer_copy},
        labels=("nbdcopy → filter → null", "nbdcopy --blkhash → null"),
        display="faster", short="nbdcopy vs nbdcopy --blkhash",
        judge=lambda s: [("vs nbdcopy --blkhash, same copy: ≥ 3x faster",
                          "%.2fx" % s["ratio"], s["ratio"] >= 3)])
    add("peer", "peer: checksum of a file, `nbdkit -r ... file --run true` vs "
        "`nbdcopy --blkhash FILE null:`", ["sha256"], D,
        sides={"filter": lambda r, dg: r.selfrun("file", [dense], dg),
               "nofilter": peer_sum},
        labels=("filter read-back", "nbdcopy --blkhash FILE null:"),
        display="faster", short="file checksum vs nbdcopy --blkhash",
        judge=lambda s: [("checksum of a file vs nbdcopy --blkhash: ≥ 6x faster",
                          "%.2fx" % s["ratio"], s["ratio"] >= 6)])

    if args.case:
        pats = [p.strip() for p in args.case.split(",")]
        known = {c["group"] for c in cases} | {c["digest"] for c in cases}
        unknown = [p for p in pats if p not in known]
        if unknown:
            raise BenchError("unknown --case %s (known: %s)" % (
                ",".join(unknown), ", ".join(sorted(known))))
        cases = [c for c in cases if c["group"] in pats or c["digest"] in pats]
        if any(c["group"] == "peer" for c in cases) and \
                not nbdcopy_has_blkhash(runner.rundir):
            raise BenchError("the peer case needs nbdcopy --blkhash (libnbd "
                             "1.24 and later): bench/run --distro forky --case peer")
    elif not nbdcopy_has_blkhash(runner.rundir):
        log("bench: this nbdcopy has no --blkhash: no peer case "
            "(bench/run --distro forky --case peer)")
        cases = [c for c in cases if c["group"] != "peer"]
    return cases


def human(n):
    for unit, size in (("T", TiB), ("G", GiB), ("M", MiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}iB"
    return str(n)


def run_case(runner, case, reps):
    sides = {"filter": [], "nofilter": [], "probe": []}
    name = f"{case['name']} [{case['digest']}]"
    if case.get("once"):
        case["once"]()
    for i in range(reps):
        for side in ("filter", "nofilter"):           # A B A B ...
            if case["prepare"]:
                case["prepare"]()
            res = case["sides"][side](runner, case["digest"])
            sides[side].append(res)
            log("bench: %-62s %-8s rep %d: %6.2f s  %5.2f GB/s" % (
                name, side, i + 1, res["seconds"],
                case["size"] / res["seconds"] / 1e9))
        if case.get("probe"):       # a reference measurement, e.g. sha256sum
            res = case["probe"](runner)
            sides["probe"].append(res)
            log("bench: %-62s %-8s rep %d: %6.2f s" % (name, "probe", i + 1,
                                                       res["seconds"]))
    return sides


def summarize(case, sides):
    gb = case["size"] / 1e9
    s = {"group": case["group"], "name": case["name"], "short": case["short"],
         "digest": case["digest"], "labels": list(case["labels"]),
         "image": case["image"], "display": case["display"],
         "kind": case["kind"], "size": case["size"]}
    for side in ("filter", "nofilter"):
        runs = sides[side]
        secs = statistics.median(r["seconds"] for r in runs)
        s[side] = {
            "seconds": secs,
            "all_seconds": [r["seconds"] for r in runs],
            "gbps": gb / secs,
            "cpu_per_gb": statistics.median(r["cpu"] for r in runs) / gb,
            "rss_mib": (max(r["rss_kib"] for r in runs) / 1024
                        if runs[0]["rss_kib"] is not None else None),
        }
    s["ratio"] = s["filter"]["gbps"] / s["nofilter"]["gbps"]
    # Every report of either side, and what a reference tool printed
    # when the case knows how to read a checksum from it.
    checksums = {r["report"]["hex"] for side in ("filter", "nofilter")
                 for r in sides[side] if r.get("report")}
    checksums |= {r["checksum"] for side in ("filter", "nofilter")
                  for r in sides[side] if r.get("checksum")}
    s["checksums"] = sorted(checksums)
    s["hashed"] = max(int(r["report"]["hashed"] or 0) for r in sides["filter"])
    s["read"] = max(int(r["report"]["read"] or 0) for r in sides["filter"])
    a, b = sides["filter"], sides["nofilter"]
    if "http_bytes" in a[0]:
        s["qcow2_size"] = case["qcow2_size"]()
        s["http_bytes"] = [r["http_bytes"] for r in a]
        s["http_bytes_b"] = [r["http_bytes"] for r in b]
        s["http_gets"] = [r["http_gets"] for r in a]
    if case.get("whole"):
        s["whole"] = case["whole"]
        p = sides["probe"]
        s["probe_seconds"] = statistics.median(r["seconds"] for r in p)
        s["sha256sum_seconds"] = statistics.median(r["sha256sum_seconds"] for r in p)
        s["openssl_seconds"] = statistics.median(r["openssl_seconds"] for r in p)
        ref = {r["output"].split()[0] for r in p} | \
            {r["openssl_output"].split()[0] for r in p}
        got = {r["report"]["fields"].get("whole", "") for r in a}
        s["whole_values"] = sorted(got)
        s["whole_reference"] = sorted(ref)
        s["whole_ok"] = len(ref) == 1 and got == {case["whole"] + ":" + ref.pop()}
        s["whole_read"] = max(int(r["report"]["fields"].get("whole-read", -1))
                              for r in a)
    if case.get("count_reads"):
        # What reached the plugin during the traffic: the log filter's
        # reads less the report's own (read=).
        traffic = lambda runs: statistics.median(
            r["plugin_read"] - int(r["report"]["read"]) for r in runs)
        s["traffic_read"], s["traffic_read_b"] = traffic(a), traffic(b)
        s["plugin_read"] = [r["plugin_read"] for r in a]
        s["plugin_read_b"] = [r["plugin_read"] for r in b]
        s["report_read"] = [int(r["report"]["read"]) for r in a]
        s["report_read_b"] = [int(r["report"]["read"]) for r in b]
        s["client_reads"] = max(r["client_reads"] for r in b)
    if case.get("judge"):
        s["judged"] = case["judge"](s)
    if case["kind"] == "readback":
        s["reference"] = " ".join(case["ref"][:-1])
        s["reference_output"] = sides["nofilter"][0].get("output")
    if case["kind"] == "memory":
        data_blocks = max(case["nominal_data"], s["hashed"]) // BLOCK
        all_blocks = case["size"] // BLOCK
        ds = DIGEST_SIZE[case["digest"]]
        bound = 2 * (ds + 8) * data_blocks + all_blocks + 32 * MiB
        delta = (s["filter"]["rss_mib"] - s["nofilter"]["rss_mib"]) * MiB
        s["memory"] = {"data_blocks": data_blocks, "all_blocks": all_blocks,
                       "digest_size": ds, "bound_bytes": bound,
                       "delta_bytes": delta, "pass": delta <= bound}
    return s


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"


def environment(args, cfg):
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    try:
        commit = subprocess.run(["git", "-C", TOP, "describe", "--always",
                                 "--dirty"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:         # no git (bench/run --distro's chroot)
        commit = None
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "load_at_start": "%.2f %.2f %.2f" % os.getloadavg(),
        "nbdkit": first_line(["nbdkit", "--version"]),
        "nbdcopy": first_line(["nbdcopy", "--version"]),
        "qemu_img": first_line(["qemu-img", "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "filter": args.filter,
        "commit": commit or os.environ.get("BENCH_COMMIT") or "unknown",
        "mode": "quick" if args.quick else "full",
        "reps": args.reps,
        "config": cfg,
    }


def fmt(x, spec="%.2f"):
    return "—" if x is None else spec % x


def targets(summaries):
    """The project's performance goals, judged on the medians."""
    out = []
    for s in summaries:
        r, d, g = s["ratio"], s["digest"], s["group"]
        label = f"{s['name']} [{d}]"
        if s.get("judged") is not None:      # the case's own targets
            out += [(t, label, v, ok) for t, v, ok in s["judged"]]
            if d == "xxh128":
                out.append(("xxh128 ratio ≥ 0.90 everywhere", label,
                            "%.2f" % r, r >= 0.90))
            continue
        if s["kind"] == "readback":
            if d == "sha256" and g == "readback":
                out.append(("read-back ≥ 1.6x faster than openssl dgst", label,
                            "%.2fx" % r, r >= 1.6))
            continue
        if g == "nbdcopy-file-verify":
            continue      # reads everything back on purpose: informational
        if d == "sha256" and g.startswith(("nbdcopy", "sparse", "memory")):
            out.append(("sha256 nbdcopy ratio ≥ 0.40", label, "%.2f" % r, r >= 0.40))
        if d == "sha256" and g == "qemu-img":
            out.append(("sha256 qemu-img (one in flight) ratio ≥ 0.60", label,
                        "%.2f" % r, r >= 0.60))
        if d == "xxh128":
            out.append(("xxh128 ratio ≥ 0.90 everywhere", label, "%.2f" % r, r >= 0.90))
        if s["kind"] == "memory":
            m = s["memory"]
            out.append(("memory: RSS(filter) − RSS(no filter) ≤ bound", label,
                        "%.1f MiB ≤ %.1f MiB" % (m["delta_bytes"] / MiB,
                                                 m["bound_bytes"] / MiB),
                        m["pass"]))
        if g == "memory":  # folding on: bounded whatever the size
            m = s["memory"]
            out.append(("stretch: with folding, RSS(filter) − RSS(no filter) "
                        "≤ 32 MiB", label, "%.1f MiB" % (m["delta_bytes"] / MiB),
                        m["delta_bytes"] <= 32 * MiB))
    return out


def markdown(env, summaries, checks, elapsed):
    L = []
    L.append("# nbdkit-blkhash-filter benchmark")
    L.append("")
    L.append(f"- date: {env['date']} ({env['mode']} run, {env['reps']} "
             f"repetitions per side, took {elapsed / 60:.1f} min)")
    L.append(f"- machine: nproc {env['nproc']}, {env['cpu']}, {env['memory']} "
             f"RAM, kernel {env['kernel']}, load at start {env['load_at_start']}")
    L.append(f"- tools: {env['nbdkit']}; {env['nbdcopy']}; {env['qemu_img']}; "
             f"{env['openssl']}")
    L.append(f"- filter: `{os.path.relpath(env['filter'], TOP)}` at `{env['commit']}`, "
             "block size 64K")
    L.append("")
    L.append("Throughput is the image's virtual size (GB = 10⁹ bytes) over the "
             "median wall time, from the client's start to nbdkit's exit "
             "(including the report). CPU is user+sys of nbdkit and the client, "
             "per GB of virtual size. RSS is nbdkit's peak (VmHWM, read once the "
             "report is logged; the largest over the runs). "
             "For the read-back rows the \"without\" side is the reference "
             "tool named in the case, and the ratio is how many times faster "
             "the filter is. See [README.md](../README.md) for the method.")
    L.append("")
    L.append("| case | digest | A: with filter GB/s | B: without GB/s | "
             "ratio A/B | CPU s/GB A | CPU s/GB B | nbdkit RSS MiB A | B |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for s in summaries:
        f, n = s["filter"], s["nofilter"]
        ratio = ("%.2fx faster" % s["ratio"]) if s["display"] == "faster" \
            else "%.2f" % s["ratio"]
        name = s["name"]
        if s["display"] != "faster" and \
                tuple(s["labels"]) != ("with filter", "without filter"):
            name += f" (A: {s['labels'][0]}; B: {s['labels'][1]})"
        L.append(f"| {name} | {s['digest']} | {f['gbps']:.2f} | "
                 f"{n['gbps']:.2f} | {ratio} | {f['cpu_per_gb']:.2f} | "
                 f"{n['cpu_per_gb']:.2f} | {fmt(f['rss_mib'], '%.0f')} | "
                 f"{fmt(n['rss_mib'], '%.0f')} |")
    L.append("")
    mem = [s for s in summaries if s["kind"] == "memory"]
    if mem:
        L.append("## Memory bound")
        L.append("")
        L.append("bound = 2 × (digest size + 8) × data blocks + 1 byte × all "
                 "blocks + 32 MiB, with 64K blocks; data blocks = the larger "
                 "of the nominal data size and `hashed=` from the report, / 64K.")
        L.append("")
        L.append("| case | digest | data blocks | all blocks | RSS with − without | bound | result |")
        L.append("|---|---|--:|--:|--:|--:|---|")
        for s in mem:
            m = s["memory"]
            L.append(f"| {s['name']} | {s['digest']} | {m['data_blocks']} | "
                     f"{m['all_blocks']} | {m['delta_bytes'] / MiB:.1f} MiB | "
                     f"{m['bound_bytes'] / MiB:.1f} MiB | "
                     f"{'PASS' if m['pass'] else 'FAIL'} |")
        L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | case | value | result |")
    L.append("|---|---|--:|---|")
    for t, label, value, ok in checks:
        result = "info" if ok is None else "PASS" if ok else "FAIL"
        L.append(f"| {t} | {label} | {value} | {result} |")
    L.append("")
    L.append("## Checksums")
    L.append("")
    L.append("Every filtered run of a case must log the same checksum; cases "
             "over the same data with the same digest must agree too.")
    L.append("")
    for s in summaries:
        L.append(f"- {s['name']} [{s['digest']}]: `{' '.join(s['checksums'])}`")
    L.append("")
    L.append("Wall times of every run (seconds, in run order), with / without:")
    L.append("")
    for s in summaries:
        w = ", ".join("%.2f" % x for x in s["filter"]["all_seconds"])
        wo = ", ".join("%.2f" % x for x in s["nofilter"]["all_seconds"])
        L.append(f"- {s['name']} [{s['digest']}]: {w} / {wo}")
    L.append("")
    return "\n".join(L)


def check_checksums(summaries, dense_size):
    """Same data + same digest => same checksum, whatever the path."""
    problems = []
    by_source = {}
    for s in summaries:
        if len(s["checksums"]) != 1:
            problems.append(f"{s['name']} [{s['digest']}]: runs disagree: {s['checksums']}")
            continue
        if s.get("whole") and not s["whole_ok"]:
            problems.append(f"{s['name']}: whole= {s['whole_values']} is not "
                            f"{s['whole']}sum's {s['whole_reference']}")
        if s["image"] is None:
            continue
        by_source.setdefault((s["image"], s["digest"]), set()).add(s["checksums"][0])
    for (image, d), values in by_source.items():
        if len(values) != 1:
            problems.append(f"{d} over the {image} image: cases disagree: "
                            f"{sorted(values)}")
    return problems


def plot(summaries, png, datfile):
    if not shutil.which("gnuplot"):
        log("bench: gnuplot not found, no PNG")
        return False
    with open(datfile, "w") as f:
        for s in summaries:
            label = f"{s['short']} {s['digest']}"
            f.write('"%s" %.4f %.4f\n' % (label, s["filter"]["gbps"],
                                          s["nofilter"]["gbps"]))
    n = len(summaries)
    script = f"""
set terminal pngcairo size {max(1000, 70 * n + 200)},760 font "sans,10"
set output "{png}"
set title "nbdkit-blkhash-filter: throughput with and without the filter (median, GB/s of virtual size, log scale)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [0.1:*]
set ylabel "GB/s"
set grid ytics
set xtics rotate by -35 scale 0 font ",9"
set key top left
set bmargin 10
set rmargin 16
plot "{datfile}" using 2:xtic(1) title "with filter" lc rgb "#d95f02", \\
     "" using 3 title "without filter (read-back: reference tool)" lc rgb "#1b9e77"
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        log("bench: gnuplot failed:\n" + r.stderr)
        return False
    return True


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark nbdkit-blkhash-filter: every case with and "
                    "without the filter, interleaved; medians.")
    ap.add_argument("--quick", action="store_true",
                    help="1 GiB image, 16 GiB sparse, 256 GiB memory case, 2 reps (~3 min)")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per side (default 3, --quick 2)")
    ap.add_argument("--mem-reps", type=int, default=1,
                    help="repetitions per side of the memory case (default 1)")
    ap.add_argument("--workdir", default="/var/tmp/blkhash-bench",
                    help="where images and sockets go (default %(default)s)")
    ap.add_argument("--outdir", default=None,
                    help="where the seed, source, download and map-read cases "
                         "write their raw output (default /dev/shm if it is a "
                         "tmpfs, else the work dir)")
    ap.add_argument("--filter", default=DEFAULT_FILTER,
                    help="the filter .so (default build/filter/...)")
    ap.add_argument("--case", default=None,
                    help="only cases whose group contains one of these "
                         "comma-separated words (nbdcopy-null, nbdcopy-memory, "
                         "qemu-img, qemu-img-W, nbdcopy-file-verify, "
                         "nbdcopy-read, sparse, readback, memory, memory-nofold, seed, source, "
                         "download, map-read, map-write, peer) or digest")
    ap.add_argument("--results", default=RESULTS,
                    help="output directory (default bench/results)")
    ap.add_argument("--images-only", action="store_true",
                    help="only make the raw images (bench/run --distro makes "
                         "them on the host and links them into the chroot)")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw latest.png from latest.json")
    args = ap.parse_args()
    if args.replot:
        with open(os.path.join(args.results, "latest.json")) as f:
            summaries = json.load(f)["cases"]
        ok = plot(summaries, os.path.join(args.results, "latest.png"),
                  os.path.join(args.results, "latest.dat"))
        return 0 if ok else 1
    if args.reps is None:
        args.reps = 2 if args.quick else 3
    if args.reps < 1 or args.mem_reps < 1:
        ap.error("repetitions must be at least 1")
    args.filter = os.path.abspath(args.filter)
    args.workdir = os.path.abspath(args.workdir)
    if args.outdir is None:
        args.outdir = args.workdir
        with open("/proc/mounts") as f:
            if any(l.split()[1:3] == ["/dev/shm", "tmpfs"] for l in f) and \
                    os.access("/dev/shm", os.W_OK):
                args.outdir = "/dev/shm"
    args.outdir = os.path.abspath(args.outdir)
    if not os.path.exists(args.filter):
        ap.error(f"no filter at {args.filter} (build it: ninja -C build)")

    cfg = ({"dense": 1 * GiB, "sparse_virtual": 16 * GiB, "sparse_data": 256 * MiB,
            "mem_virtual": 256 * GiB} if args.quick else
           {"dense": 2 * GiB, "sparse_virtual": 64 * GiB, "sparse_data": 1 * GiB,
            "mem_virtual": 1 * TiB})
    cfg["mem_reps"] = args.mem_reps

    if args.images_only:
        make_images(args, cfg)
        return 0
    start = time.monotonic()
    env = environment(args, cfg)
    log(f"bench: {env['mode']} run, {args.reps} reps, workdir {args.workdir}, "
        f"load {env['load_at_start']}")
    os.makedirs(args.workdir, exist_ok=True)
    runner = Runner(args)
    http = HttpServer(args.workdir, os.path.join(runner.rundir, "http.log"))
    cases = build_cases(args, cfg, runner, http)
    dense, sparse, qcow2 = make_images(
        args, cfg, need_qcow2=any(c.get("needs_qcow2") for c in cases),
        need_sparse=any(c["group"] == "sparse" for c in cases))

    summaries = []
    try:
        for case in cases:
            if case["kind"] != "memory":
                warm(dense)
                if case["group"] == "sparse":
                    warm(sparse, cfg["sparse_virtual"], cfg["sparse_data"])
                if case.get("needs_qcow2"):
                    warm(qcow2)
            reps = case.get("reps", args.reps)
            sides = run_case(runner, case, reps)
            summaries.append(summarize(case, sides))
    finally:
        http.stop()
    for out in (os.path.join(args.workdir, "out.raw"),
                os.path.join(args.outdir, "blkhash-bench-out.raw")):
        remove_if_present(out)

    elapsed = time.monotonic() - start
    checks = targets(summaries)
    problems = check_checksums(summaries, cfg["dense"])

    os.makedirs(args.results, exist_ok=True)
    md = markdown(env, summaries, checks, elapsed)
    if problems:
        md += "\n## Checksum problems\n\n" + "\n".join("- " + p for p in problems) + "\n"
    png = os.path.join(args.results, "latest.png")
    if plot(summaries, png, os.path.join(args.results, "latest.dat")):
        md += "\n![throughput with and without the filter](latest.png)\n"
    with open(os.path.join(args.results, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.results, "latest.json"), "w") as f:
        json.dump({"environment": env, "elapsed_seconds": elapsed,
                   "cases": summaries,
                   "targets": [dict(target=t, case=c, value=v, ok=ok)
                               for t, c, v, ok in checks],
                   "checksum_problems": problems}, f, indent=1)
    print(md)
    log(f"bench: wrote {os.path.relpath(args.results, os.getcwd())}/latest.md "
        f"(.json, .png) in {elapsed / 60:.1f} min")
    if problems:
        log("bench: CHECKSUM PROBLEMS:\n  " + "\n  ".join(problems))
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"bench: error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
