#!/usr/bin/python3
"""Hostile exports and a hostile result-file environment.

Run: meson test -C build --suite functional hostile -v

Proves:
  - an export with more than 2^32 blocks (null plugin, size 2^63-1; and
    the boundary: 2^48+1 bytes at 64K, 2^58+1 bytes at 64M) can be
    probed (nbdinfo --no-content: a name without data requests costs
    nothing), but data requests (nbdcopy, an nbdsh read) and the check
    (nbdinfo --list) fail, the log has an error line saying "too large"
    and naming blkhash-block-size, every report line says incomplete
    ... verdict=incomplete (never a value), and nbdkit exits in seconds
    (asserted < 30 s) with no crash; with "--run true" the shutdown path
    logs the same error instead of hanging.  Exactly 2^32 blocks (2^48
    bytes at 64K) is still served (a read works);
  - a 1 PiB null export at blkhash-block-size=64M (2^24 blocks, allowed)
    reports at shutdown within 60 s, and its value equals a hashlib
    reference computed here (every leaf is H(64M zero bytes));
  - the result file's mode is 0666 less nbdkit's umask, started under
    umask 022, 077 and 027 (nbdkit 1.32 itself resets its umask to 022
    at start-up, so the file is 0644 in all three: a NOTE is printed);
    no ".NAME.*" temporary file is left after normal reports, after an
    incomplete report, or after a failed rename;
  - if the result path is replaced by a symlink after start-up, the
    report replaces the symlink itself and leaves its target untouched;
    if it is replaced by a directory, the rename fails with a logged
    error, the directory is untouched and nbdkit carries on;
  - a crash between writing the temporary file and renaming it (an
    LD_PRELOAD shim SIGKILLs nbdkit in its second rename(); skipped
    without cc) leaves the first report's result file intact, and the
    temporary file already holds the complete new value (written and
    synced before rename);
  - a result directory that is not writable is refused at start-up, and
    one made read-only after start-up gives a logged error, not a crash
    (as root, access() always says writable, so these run nbdkit as
    "nobody"; skipped if that is not possible);
  - a plugin whose every pread fails (eval plugin, no error filter):
    the report is "incomplete" with error="...", a stale result file is
    removed, nothing crashes;
  - file-plugin exports whose size is not a multiple of 512 (1000 and
    3*64K+1 bytes) are hashed at their exact size, equal to the
    reference of the exact bytes.
Reference values are computed here with hashlib or harness.reference,
never taken from the filter.
"""

import hashlib
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, crash_words, run_tests, parse_reports,  # noqa: E402
                     reference, run_nbdkit, ENV, FILTER)

TOO_LARGE_RE = re.compile(r"error: .*too large.*blkhash-block-size")


def no_crash(p, what):
    check(p.returncode >= 0, what + ": not killed by a signal", p.returncode)
    bad = crash_words(p.stderr)
    check(not bad, what + ": no crash in the log", p.stderr[-2000:])


def temp_files(directory, name):
    return [f for f in os.listdir(directory) if f.startswith("." + name + ".")]


# --- 1. Exports too large to hash ----------------------------------------------

READ_ONE = "nbdsh -u \"$uri\" -c 'h.pread(512, 0)'"


def only_incomplete(p, what):
    """Report lines, if any, never claim a value."""
    reports = parse_reports(p.stderr)
    check(all(r["digest"] == "incomplete"
              and r.get("verdict") == "incomplete" for r in reports),
          what + ": every report line says incomplete ... "
          "verdict=incomplete", p.stderr)


def test_too_large(tmp):
    huge = str(2**63 - 1)
    run = ('nbdinfo --no-content "$uri"; echo NBDINFO=$?; '
           'nbdcopy "$uri" null:; echo NBDCOPY=$?; '
           'nbdinfo --list "$uri"; echo CHECK=$?')
    p, secs = run_nbdkit(["null", "size=" + huge], [], run=run, timeout=60)
    if p:
        what = "too large 2^63-1 with clients"
        check(secs < 30, what + ": nbdkit exits in < 30 s", secs)
        no_crash(p, what)
        check(p.returncode == 0, what + ": exit status of --run", p.stderr)
        check("NBDINFO=0" in p.stdout, what + ": a probe works", p.stdout)
        check("NBDCOPY=0" not in p.stdout and "NBDCOPY=" in p.stdout,
              what + ": nbdcopy fails", p.stdout)
        check("CHECK=0" not in p.stdout and "CHECK=" in p.stdout,
              what + ": the check fails", p.stdout)
        errors = [l for l in p.stderr.splitlines() if TOO_LARGE_RE.search(l)]
        check(len(errors) >= 2, what + ": error says too large and names "
              "blkhash-block-size (nbdcopy, the check)", p.stderr)
        only_incomplete(p, what)

    p, secs = run_nbdkit(["null", "size=" + huge], [], run="true",
                         timeout=60)
    if p:
        what = "too large 2^63-1 --run true"
        check(secs < 30, what + ": nbdkit exits in < 30 s", secs)
        no_crash(p, what)
        check(p.returncode == 0, what + ": exit status", p.stderr)
        check(any(TOO_LARGE_RE.search(l) for l in p.stderr.splitlines()),
              what + ": shutdown logs the too-large error", p.stderr)
        only_incomplete(p, what)

    # One block past 2^32 blocks, at the smallest and largest block size
    # that makes the boundary reachable.
    for size, params in ((2**48 + 1, []),
                         (2**58 + 1, ["blkhash-block-size=64M"])):
        what = "too large %d %s" % (size, " ".join(params) or "64K")
        p, secs = run_nbdkit(["null", "size=%d" % size], params,
                             run=READ_ONE + '; echo READ=$?', timeout=60)
        if not p:
            continue
        check(secs < 30, what + ": nbdkit exits in < 30 s", secs)
        no_crash(p, what)
        check("READ=" in p.stdout and "READ=0" not in p.stdout,
              what + ": a read fails", p.stdout)
        check(any(TOO_LARGE_RE.search(l) for l in p.stderr.splitlines()),
              what + ": too-large error", p.stderr)
        only_incomplete(p, what)

    # Exactly 2^32 blocks is served.  Its report would hash 128 GiB of
    # leaves, so nbdkit (our child) is killed once the client is done.
    sock = os.path.join(tmp, "boundary.sock")
    server = subprocess.Popen(["nbdkit", "-U", sock, "-f",
                               "--filter=" + FILTER, "null",
                               "size=%d" % 2**48],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        c = subprocess.run(["nbdinfo", "--size",
                            "nbd+unix:///?socket=" + sock],
                           capture_output=True, text=True, env=ENV,
                           timeout=30)
        check(c.returncode == 0 and c.stdout.strip() == str(2**48),
              "exactly 2^32 blocks of 64K: served", c.stderr)
        c = subprocess.run(["sh", "-c", READ_ONE],
                           env=dict(ENV, uri="nbd+unix:///?socket=" + sock),
                           capture_output=True, text=True, timeout=30)
        check(c.returncode == 0, "exactly 2^32 blocks of 64K: a read works",
              c.stderr)
    finally:
        server.kill()
        _, err = server.communicate(timeout=30)
    check("too large" not in err, "exactly 2^32 blocks: no too-large error",
          err)

    # 1 PiB at 64M blocks: 2^24 blocks, allowed; all-zero extents.
    size = 1 << 50
    bs = 64 << 20
    result = os.path.join(tmp, "petabyte-sum")
    p, secs = run_nbdkit(["null", "size=1P"],
                         ["blkhash-block-size=64M", "blkhash-file=" + result],
                         run="true", timeout=120)
    leaf = hashlib.sha256(bytes(bs)).digest()
    outer = hashlib.sha256()
    chunk = leaf * 65536  # 2 MiB of leaves
    for _ in range(size // bs // 65536):
        outer.update(chunk)
    outer.update(struct.pack("<Q", size))
    want = outer.hexdigest()
    if p:
        what = "null 1P at 64M"
        check(secs < 60, what + ": reports within 60 s", secs)
        no_crash(p, what)
        check(p.returncode == 0, what + ": exit status", p.stderr)
        reports = parse_reports(p.stderr)
        check(len(reports) == 1 and reports[0]["digest"] == want
              and reports[0].get("size") == str(size)
              and reports[0]["label"] == "sha256/64M",
              what + ": report == hashlib reference " + want, p.stderr)
        check(os.path.exists(result) and open(result).read() == want + "\n",
              what + ": result file == reference")


# --- 2. Result file safety -------------------------------------------------------


def test_modes(tmp):
    d = os.path.join(tmp, "modes")
    os.mkdir(d)
    data = os.path.join(tmp, "modes.raw")
    with open(data, "wb") as f:
        f.write(bytes(range(256)) * 1000)
    want = reference(data)
    for mask in (0o022, 0o077, 0o027):
        what = "umask %03o" % mask
        result = os.path.join(d, "sum")
        if os.path.exists(result):
            os.unlink(result)
        # The --run command inherits nbdkit's umask, which is not the one
        # nbdkit was started with: nbdkit (1.32 at least) itself calls
        # umask(022) at start-up, before any filter is loaded.
        p, _ = run_nbdkit(["file", data], ["blkhash-file=" + result],
                          run='umask; nbdcopy "$uri" null:', umask=mask)
        if not p:
            continue
        m = re.search(r"^0?([0-7]{3,4})$", p.stdout, re.M)
        if not check(m is not None, what + ": nbdkit's umask", p.stdout):
            continue
        nbdkit_mask = int(m.group(1), 8)
        mode = 0o666 & ~nbdkit_mask
        if nbdkit_mask != mask:
            print("NOTE: started with umask %03o, nbdkit runs with %03o: "
                  "the result file is %04o, not %04o"
                  % (mask, nbdkit_mask, mode, 0o666 & ~mask))
        check(p.returncode == 0, what + ": exit status", p.stderr)
        if not check(os.path.exists(result), what + ": result written",
                     p.stderr):
            continue
        got = os.stat(result).st_mode & 0o7777
        check(got == mode, what + ": mode %04o" % mode, "%04o" % got)
        check(open(result).read() == want + "\n", what + ": value")
        check(os.listdir(d) == ["sum"], what + ": no temporary files",
              os.listdir(d))


def test_symlink_swap(tmp):
    d = os.path.join(tmp, "swap")
    os.mkdir(d)
    result = os.path.join(d, "sum")
    target = os.path.join(d, "target")
    with open(target, "w") as f:
        f.write("keep me\n")
    data = os.path.join(tmp, "swap.raw")
    with open(data, "wb") as f:
        f.write(b"\x5a" * 70000 + bytes(60000) + b"tail")
    want = reference(data)

    # The path is free at start-up; the --run command puts a symlink
    # there before the client reads.
    run = 'ln -s %s %s && nbdcopy "$uri" null:' % (shlex.quote(target),
                                                 shlex.quote(result))
    p, _ = run_nbdkit(["file", data], ["blkhash-file=" + result], run=run)
    if p:
        what = "symlink swapped in after start-up"
        check(p.returncode == 0, what + ": exit status", p.stderr)
        no_crash(p, what)
        check(not os.path.islink(result) and os.path.isfile(result)
              and open(result).read() == want + "\n",
              what + ": the symlink itself is replaced by the result")
        check(open(target).read() == "keep me\n",
              what + ": the symlink's target is untouched")
        check(sorted(os.listdir(d)) == ["sum", "target"],
              what + ": no temporary files", os.listdir(d))

    # Same, replacing an existing regular result file with a symlink.
    os.unlink(result)
    with open(result, "w") as f:
        f.write("old\n")
    run = 'ln -sf %s %s && nbdcopy "$uri" null:' % (shlex.quote(target),
                                                  shlex.quote(result))
    p, _ = run_nbdkit(["file", data], ["blkhash-file=" + result], run=run)
    if p:
        what = "old file swapped for a symlink"
        check(p.returncode == 0 and not os.path.islink(result)
              and open(result).read() == want + "\n"
              and open(target).read() == "keep me\n",
              what + ": symlink replaced, target untouched", p.stderr)

    # A directory swapped in: rename() cannot replace it.
    os.unlink(result)
    run = ('mkdir %s && echo inside > %s/x && nbdcopy "$uri" null:'
           % (shlex.quote(result), shlex.quote(result)))
    p, _ = run_nbdkit(["file", data], ["blkhash-file=" + result], run=run)
    if p:
        what = "directory swapped in after start-up"
        no_crash(p, what)
        check(p.returncode == 0, what + ": exit status", p.stderr)
        check(any("blkhash-file" in l and "error" in l and result in l
                  for l in p.stderr.splitlines()),
              what + ": a logged error naming the path", p.stderr)
        reports = parse_reports(p.stderr)
        check(len(reports) >= 1 and reports[0]["digest"] == want,
              what + ": the log still has the value", p.stderr)
        check(os.path.isdir(result) and os.listdir(result) == ["x"]
              and open(os.path.join(result, "x")).read() == "inside\n",
              what + ": directory untouched")
        check(temp_files(d, "sum") == [], what + ": no temporary files",
              os.listdir(d))


CRASH_SHIM = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int renames;  /* to the victim, so far */
int rename(const char *from, const char *to) {
  const char *victim = getenv("BLKHASH_TEST_CRASH_RENAME");
  const char *at = getenv("BLKHASH_TEST_CRASH_RENAME_AT");
  if (victim && strcmp(victim, to) == 0 && ++renames == (at ? atoi(at) : 1))
    kill(getpid(), SIGKILL);
  int (*real)(const char *, const char *) =
      (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
  return real(from, to);
}
'''


def test_crash_before_rename(tmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or os.environ.get("BLKHASH_SANITIZER_RUNTIME"):
        print("SKIP: crash between write and rename (no cc, or a "
              "sanitizer build)")
        return
    src = os.path.join(tmp, "crash_shim.c")
    shim = os.path.join(tmp, "crash_shim.so")
    with open(src, "w") as f:
        f.write(CRASH_SHIM)
    b = subprocess.run([cc, "-shared", "-fPIC", "-o", shim, src, "-ldl"],
                       capture_output=True, text=True)
    if b.returncode != 0:
        print("SKIP: crash between write and rename (shim: %s)" % b.stderr)
        return
    d = os.path.join(tmp, "crash")
    os.mkdir(d)
    result = os.path.join(d, "sum")
    # Two reports in one run (a result file from an earlier run is removed
    # at start-up): the first writes the file, the second dies in rename.
    size = 150000
    first = b"crash" * (size // 5)
    second = bytes(70000) + b"crash" * ((size - 70000) // 5)
    old, want = reference(first), reference(second)
    run = ('nbdsh -u "$uri" -c "h.pwrite(b\'crash\' * %d, 0)" && '
           'nbdinfo --list "$uri" >/dev/null && '
           'nbdsh -u "$uri" -c "h.zero(70000, 0)" && '
           'nbdinfo --list "$uri" >/dev/null' % (size // 5))
    p, _ = run_nbdkit(["memory", "size=%d" % size],
                      ["blkhash-file=" + result], run=run, timeout=60,
                      env={"LD_PRELOAD": shim,
                           "BLKHASH_TEST_CRASH_RENAME": result,
                           "BLKHASH_TEST_CRASH_RENAME_AT": "2"})
    if not p:
        return
    what = "crash before rename"
    # With --run, the server is nbdkit's child: the parent reports its
    # death by SIGKILL as 128+9, or returns the command's status (the
    # check lost its server).  The temporary file left behind below is
    # the proof that the server died inside rename().
    check(p.returncode != 0 or "Killed" in p.stderr,
          what + ": the server died", "%d %s" % (p.returncode, p.stderr))
    print("crash before rename: exit status %d, log: %s"
          % (p.returncode, p.stderr.strip().replace("\n", " | ")))
    check(os.path.exists(result) and open(result).read() == old + "\n",
          what + ": the result file of the first report is intact")
    temps = temp_files(d, "sum")
    check(len(temps) == 1, what + ": one temporary file left", os.listdir(d))
    if temps:
        with open(os.path.join(d, temps[0])) as f:
            check(f.read() == want + "\n",
                  what + ": temporary file already holds the whole value")


# --- 3. Unwritable result directory ----------------------------------------------


def test_unwritable_dir(tmp):
    del tmp  # needs a directory "nobody" can reach
    user = None
    if os.geteuid() == 0:
        user = 65534  # nobody: as root, access(W_OK) always succeeds
    base = tempfile.mkdtemp(prefix="blkhash-test-ro-")
    try:
        os.chmod(base, 0o755)
        good = os.path.join(base, "good")
        ro = os.path.join(base, "ro")
        later = os.path.join(base, "later")
        for d in (good, ro, later):
            os.mkdir(d)
            if user is not None:
                os.chown(d, user, user)
        # Control: nbdkit as that user can start and write at all.
        p, _ = run_nbdkit(["null", "size=1M"],
                          ["blkhash-file=" + os.path.join(good, "sum")],
                          run="true", user=user, timeout=60, cwd=base)
        if not p or p.returncode != 0 or not os.path.exists(
                os.path.join(good, "sum")):
            print("SKIP: unwritable directory (nbdkit cannot run as uid "
                  "%s here: %s)" % (user, p and p.stderr))
            return
        zero_1m = reference(bytes(1 << 20))
        check(open(os.path.join(good, "sum")).read() == zero_1m + "\n",
              "unwritable: control run writes the reference")

        os.chmod(ro, 0o555)
        p, _ = run_nbdkit(["null", "size=1M"],
                          ["blkhash-file=" + os.path.join(ro, "sum")],
                          run="echo STARTED", user=user, timeout=60,
                          cwd=base)
        if p:
            what = "read-only directory at start-up"
            check(p.returncode != 0, what + ": refused", p.stderr)
            check("STARTED" not in p.stdout, what + ": --run never ran")
            check(any("blkhash-file" in l and "not writable" in l
                      for l in p.stderr.splitlines()),
                  what + ": error says not writable", p.stderr)
            check(os.listdir(ro) == [], what + ": nothing created")

        # Writable at start-up, read-only when the report comes.
        result = os.path.join(later, "sum")
        run = 'chmod 0555 %s && nbdcopy "$uri" null:' % shlex.quote(later)
        p, _ = run_nbdkit(["null", "size=1M"], ["blkhash-file=" + result],
                          run=run, user=user, timeout=60, cwd=base)
        if p:
            what = "directory made read-only after start-up"
            no_crash(p, what)
            check(p.returncode == 0, what + ": exit status", p.stderr)
            reports = parse_reports(p.stderr)
            check(len(reports) >= 1 and reports[0]["digest"] == zero_1m,
                  what + ": the log still has the value", p.stderr)
            check(any("blkhash-file" in l and "error" in l
                      for l in p.stderr.splitlines()),
                  what + ": a logged error for the result file", p.stderr)
            check(os.listdir(later) == [], what + ": nothing created",
                  os.listdir(later))
    finally:
        for d in ("ro", "later"):
            if os.path.isdir(os.path.join(base, d)):
                os.chmod(os.path.join(base, d), 0o755)
        shutil.rmtree(base, ignore_errors=True)


# --- 4. A plugin whose reads fail, no error filter ------------------------------


def test_failing_plugin(tmp):
    d = os.path.join(tmp, "failing")
    os.mkdir(d)
    result = os.path.join(d, "sum")
    plugin = ["eval", "get_size=echo 1048576",
              "pread=echo pread refused >&2; exit 1"]
    for run, what in (("true", "failing pread --run true"),
                      ('nbdcopy "$uri" null:; echo NBDCOPY=$?',
                       "failing pread with nbdcopy")):
        with open(result, "w") as f:
            f.write("stale value\n")
        p, secs = run_nbdkit(plugin, ["blkhash-file=" + result], run=run,
                             timeout=60)
        if not p:
            continue
        print("%s: nbdkit exit status %d, %.1f s" % (what, p.returncode,
                                                    secs))
        no_crash(p, what)
        reports = parse_reports(p.stderr)
        check(len(reports) >= 1, what + ": a report line", p.stderr)
        for r in reports:
            check(r["digest"] == "incomplete" and r.get("size") == "1048576"
                  and r.get("error"),
                  what + ": incomplete with size and error=", r["line"])
        check(any("checksum incomplete" in l and "error" in l
                  for l in p.stderr.splitlines()),
              what + ": logged as an nbdkit error", p.stderr)
        check(not os.path.exists(result), what + ": stale result removed")
        check(os.listdir(d) == [], what + ": no temporary files",
              os.listdir(d))
        if "NBDCOPY" in run:
            check("NBDCOPY=" in p.stdout and "NBDCOPY=0" not in p.stdout,
                  what + ": the client's reads fail", p.stdout)


# --- 5. Sizes not a multiple of 512 through the file plugin ---------------------


def pattern(size):
    """Fixed content: a byte pattern with an all-zero 64K block in it."""
    out = bytearray((i * 7 + 3) % 251 for i in range(size))
    if size > 2 * 65536:
        out[65536:131072] = bytes(65536)
    if size:
        out[-1] = 0xA5
    return bytes(out)


def test_unaligned_sizes(tmp):
    for size in (1000, 65536 * 3 + 1, 4096 * 5 + 3):
        data = os.path.join(tmp, "unaligned-%d.raw" % size)
        content = pattern(size)
        with open(data, "wb") as f:
            f.write(content)
        for params, bs in (([], 65536), (["blkhash-block-size=4K"], 4096)):
            want = reference(content, block_size=bs)
            for run in ("true", 'nbdcopy "$uri" null:'):
                what = "size %d bs %d --run %s" % (size, bs, run.split()[0])
                p, _ = run_nbdkit(["file", data], params, run=run)
                if not p:
                    continue
                check(p.returncode == 0, what + ": exit status", p.stderr)
                reports = parse_reports(p.stderr)
                check(len(reports) >= 1
                      and all(r["digest"] == want
                              and r.get("size") == str(size)
                              for r in reports),
                      what + ": report == reference at the exact size",
                      p.stderr)


def main():
    run_tests(test_too_large, test_modes, test_symlink_swap,
              test_crash_before_rename, test_unwritable_dir,
              test_failing_plugin, test_unaligned_sizes)


if __name__ == "__main__":
    main()
