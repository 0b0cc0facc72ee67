"""Shared helpers for the functional tests: nbdkit with the built filter,
driven by real clients (nbdcopy, qemu-img, nbdinfo, nbdsh).

Each test script is run by meson with /usr/bin/python3 and this
environment (see tests/functional/meson.build):

  BLKHASH_FILTER       path of the built nbdkit-blkhash-filter.so
  BLKHASH_TEST_DATA    tests/data (vectors.tsv, images.tsv)
  BLKHASH_TEST_IMAGES  the generated vector images (<name>.raw)
  BLKHASH_TOOLS        tests/tools (blkhash_ref.py, the independent reference)

A test script calls check(...) for each assertion and finish() at the end,
which prints "N passed, M failed" and exits non-zero on any failure; a
test that cannot run where it runs calls skip(reason) instead (exit 77).
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.environ.get("BLKHASH_TOOLS", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tools")))
import blkhash_ref  # noqa: E402  (the independent reference)

HERE = os.path.dirname(os.path.abspath(__file__))
FILTER = os.environ.get("BLKHASH_FILTER", "")
DATA = os.environ.get("BLKHASH_TEST_DATA", "")
IMAGES = os.environ.get("BLKHASH_TEST_IMAGES", "")

# nbdsh and libnbd's Python need the system python first on PATH.  In a
# sanitizer build, BLKHASH_WRAPPERS holds an nbdkit wrapper that must
# come first of all (tests/functional/sanitizer/nbdkit).
_wrappers = os.environ.get("BLKHASH_WRAPPERS")
ENV = dict(os.environ, PATH=(_wrappers + ":" if _wrappers else "") +
           "/usr/bin:" + os.environ.get("PATH", ""), LC_ALL="C",
           # The loopback HTTP server (HttpServer) must never be proxied.
           no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")

# blkhash: <label> <hex|incomplete> export="<name>" size=N hashed=N read=N ...
REPORT_RE = re.compile(
    r'^(?:nbdkit: )?blkhash: (?P<label>\S+) (?P<digest>[0-9a-f]+|incomplete|pending) '
    r'export="(?P<export>(?:[^"\\]|\\.)*)"(?P<rest>.*)$')

_passed = 0
_failed = 0


def check(condition, what, detail=""):
    """Records one assertion."""
    global _passed, _failed
    if condition:
        _passed += 1
    else:
        _failed += 1
        print("FAIL: %s%s" % (what, (": " + str(detail)) if detail else ""),
              flush=True)
    return condition


# What a crashed or corrupted nbdkit leaves in its log (glibc, the C++
# runtime, the sanitizers).  Every test looks for the same words.
CRASH_WORDS = ("Segmentation fault", "Aborted", "core dumped",
               "terminate called", "Assertion", "assertion", "double free",
               "stack smashing", "AddressSanitizer", "ThreadSanitizer",
               "runtime error:")


def crash_words(log):
    """The crash words found in an nbdkit log."""
    return [w for w in CRASH_WORDS if w in log]


def no_crash(rc, log, what):
    """nbdkit exited with status 0 and its log shows no crash."""
    check(rc == 0, what + ": nbdkit exit status 0", "status %r\n%s" %
          (rc, log[-3000:]))
    bad = crash_words(log)
    check(not bad, what + ": no crash in nbdkit's log", "%s\n%s" %
          (bad, log[-3000:]))


def finish():
    print("%d passed, %d failed" % (_passed, _failed))
    sys.exit(1 if _failed or not _passed else 0)


def run_tests(*tests):
    """Runs each test(tmp) in one temporary directory, printing how long
    each took, then finish().  A test that raises fails (with its
    traceback) and the next one runs."""
    start = time.monotonic()
    with tempdir() as tmp:
        for test in tests:
            t = time.monotonic()
            try:
                test(tmp)
            except Exception:  # noqa: BLE001 (any error fails the test)
                check(False, test.__name__ + " raised",
                      traceback.format_exc())
            print("%s: %.1f s" % (test.__name__, time.monotonic() - t),
                  flush=True)
    print("total %.1f s" % (time.monotonic() - start))
    finish()


def skip(reason):
    """Ends a test that cannot run here: meson counts exit 77 as SKIP,
    and scripts/test prints this last line as the reason."""
    print("SKIP: " + reason, flush=True)
    sys.exit(77)


def vectors():
    """Rows of vectors.tsv as dicts: name, size, algorithm, block_size,
    digest."""
    rows = []
    with open(os.path.join(DATA, "vectors.tsv")) as f:
        header = f.readline().split()
        for line in f:
            if line.strip():
                row = dict(zip(header, line.split()))
                row["size"] = int(row["size"])
                row["block_size"] = int(row["block_size"])
                rows.append(row)
    return rows


def image(name):
    return os.path.join(IMAGES, name + ".raw")


def parse_reports(text):
    """Every report line in nbdkit's stderr, as dicts with label, digest,
    export and the key=value fields (size, hashed, read, ...)."""
    reports = []
    for line in text.splitlines():
        m = REPORT_RE.match(line)
        if not m:
            continue
        r = {"label": m.group("label"), "digest": m.group("digest"),
             "export": m.group("export"), "line": line}
        for k, v in re.findall(r'(?:^|\s)([\w-]+)=("(?:[^"\\]|\\.)*"|\S+)',
                               m.group("rest")):
            r[k] = v.strip('"')
        reports.append(r)
    return reports


def forced_args():
    """Filter parameters every test's nbdkit gets: BLKHASH_TEST_DEFER=
    always|never runs a whole test script with hashing after the reply
    forced on or off (blkhash-defer)."""
    defer = os.environ.get("BLKHASH_TEST_DEFER")
    return ["blkhash-defer=" + defer] if defer else []


def nbdkit(plugin_args, filter_args=(), run=None, extra=(), timeout=600,
           filter_path=None):
    """Runs nbdkit -U - with the filter in front of the plugin, in the
    foreground; with run, until the command exits.  Returns the
    CompletedProcess (stdout and stderr as text)."""
    cmd = ["nbdkit", "-U", "-", "-f", *extra,
           "--filter=" + (filter_path or FILTER), *plugin_args, *filter_args,
           *forced_args()]
    if run is not None:
        cmd += ["--run", run]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def reference(path_or_bytes, digest="sha256", block_size=65536):
    """The independent Python (hashlib/xxhash) blkhash."""
    return blkhash_ref.blkhash(path_or_bytes, digest=digest,
                               block_size=block_size)


def tempdir():
    return tempfile.TemporaryDirectory(prefix="blkhash-test-")


def flip_hex(hex_value):
    """The same value with its last digit changed."""
    last = "0" if hex_value[-1] != "0" else "1"
    return hex_value[:-1] + last


def run_nbdkit(plugin_args, filter_args=(), run=None, timeout=120,
               umask=None, user=None, env=None, cwd=None, extra=(),
               inner_filters=()):
    """Like nbdkit(), with a timeout that kills the whole process group
    (with --run, the server is a child of the nbdkit we start), extra
    nbdkit options, filters under ours, and optionally a umask, uid, extra
    environment or working directory for nbdkit.  Returns
    (CompletedProcess, or None on timeout after a failed check; elapsed
    seconds)."""
    cmd = ["nbdkit", "-U", "-", "-f", *extra, "--filter=" + FILTER,
           *["--filter=" + f for f in inner_filters],
           *plugin_args, *filter_args, *forced_args()]
    if run is not None:
        cmd += ["--run", run]

    def preexec():
        if umask is not None:
            os.umask(umask)
        if user is not None:
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)

    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(ENV, **(env or {})), preexec_fn=preexec,
                            cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        check(False, "nbdkit finished within %d s" % timeout, err[-2000:])
        return None, time.monotonic() - start
    return (subprocess.CompletedProcess(cmd, proc.returncode, out, err),
            time.monotonic() - start)


class HttpServer:
    """range_http_server.py as a subprocess on 127.0.0.1, serving the files
    of `directory` with byte ranges, each request logged to `log`.  Clients
    must not use a proxy for it: ENV sets no_proxy for 127.0.0.1."""

    def __init__(self, directory, log):
        self.log = log
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "range_http_server.py"),
             directory, "--log", log], stdout=subprocess.PIPE, text=True,
            env=ENV)
        self.port = int(self.proc.stdout.readline())

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def requests(self):
        """The logged requests so far: "METHOD PATH RANGE STATUS"."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def bytes_served(self, name, size):
        """Body bytes sent for GETs of /name (a file of `size` bytes),
        from the request log: a 206 sends its range (clamped to the file),
        a 200 the whole file."""
        total = 0
        for line in self.requests():
            method, path, rng, status = line.split()
            if method != "GET" or path != "/" + name:
                continue
            if status == "200":
                total += size
            elif status == "206":
                m = re.match(r"^bytes=(\d*)-(\d*)$", rng)
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else size - 1,
                              size - 1)
                else:
                    start, end = max(0, size - int(m.group(2))), size - 1
                total += end - start + 1
        return total

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def read(path):
    """The bytes of a file."""
    with open(path, "rb") as f:
        return f.read()


def start_qemu_nbd(tmp, name, qcow2):
    """qemu-nbd serving a qcow2 read-only on a Unix socket in tmp, in the
    background.  Returns (socket path, pid): stop it with stop_pid()."""
    sock = os.path.join(tmp, name + ".sock")
    pidfile = os.path.join(tmp, name + ".pid")
    subprocess.run(["qemu-nbd", "-r", "-t", "-e", "0", "-f", "qcow2",
                    "-k", sock, "--fork", "--pid-file", pidfile, qcow2],
                   check=True, env=ENV, capture_output=True, timeout=60)
    return sock, wait_for_pid(pidfile)


def wait_for_pid(pidfile, timeout=10):
    """The pid a daemon wrote to pidfile, once it has (None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(pidfile) and read(pidfile).strip():
            return int(read(pidfile))
        time.sleep(0.05)
    return None


def stop_pid(pid, timeout=10):
    """SIGTERM to a process that is not our child, then waits up to
    timeout seconds for it to be gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
