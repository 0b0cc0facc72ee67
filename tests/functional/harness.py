"""Shared helpers for the functional tests: nbdkit with the built filter,
driven by real clients (nbdcopy, qemu-img, nbdinfo, nbdsh).

Each test script is run by meson with /usr/bin/python3 and this
environment (see tests/functional/meson.build):

  BLKHASH_FILTER       path of the built nbdkit-blkhash-filter.so
  BLKHASH_TEST_DATA    tests/data (vectors.tsv, images.tsv)
  BLKHASH_TEST_IMAGES  the generated vector images (<name>.raw)
  BLKHASH_TOOLS        tests/tools (blkhash_ref.py, the independent reference)

A test script calls check(...) for each assertion and finish() at the end,
which prints "N passed, M failed" and exits non-zero on any failure.
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.environ.get("BLKHASH_TOOLS", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tools")))
import blkhash_ref  # noqa: E402  (the independent reference)

FILTER = os.environ.get("BLKHASH_FILTER", "")
DATA = os.environ.get("BLKHASH_TEST_DATA", "")
IMAGES = os.environ.get("BLKHASH_TEST_IMAGES", "")

# nbdsh and libnbd's Python need the system python first on PATH.  In a
# sanitizer build, BLKHASH_WRAPPERS holds an nbdkit wrapper that must
# come first of all (tests/functional/sanitizer/nbdkit).
_wrappers = os.environ.get("BLKHASH_WRAPPERS")
ENV = dict(os.environ, PATH=(_wrappers + ":" if _wrappers else "") +
           "/usr/bin:" + os.environ.get("PATH", ""), LC_ALL="C")

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


def finish():
    print("%d passed, %d failed" % (_passed, _failed))
    sys.exit(1 if _failed or not _passed else 0)


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
