#!/usr/bin/python3
"""Configuration checks at start-up: each bad value stops nbdkit before it
serves anything (non-zero exit, the --run command never runs, no report)
with an error line naming the parameter; symlinks and directories at the
blkhash-file path are refused and left untouched.  Good values (smallest
and largest block size, xxh128, blake2b512, shake128) start, and their
"--run true" report equals the independent reference.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, image, nbdkit, parse_reports,  # noqa
                     reference, tempdir)

IMAGE = "mixed-1m"


def expect_refused(what, params, parameter, words=()):
    p = nbdkit(["file", image(IMAGE)], params, run="echo STARTED", timeout=60)
    check(p.returncode != 0, what + ": non-zero exit", p.returncode)
    check("STARTED" not in p.stdout, what + ": --run never ran", p.stdout)
    check(parse_reports(p.stderr) == [], what + ": no report", p.stderr)
    lines = [l for l in p.stderr.splitlines()
             if "error" in l and (parameter + ":") in l]
    check(len(lines) >= 1, what + ": an error line naming " + parameter,
          p.stderr)
    for word in words:
        check(any(word in l for l in lines),
              what + ": error line mentions %r" % word, p.stderr)


def main():
    with tempdir() as tmp:
        expect_refused("digest nope", ["blkhash-digest=nope"],
                       "blkhash-digest", ['"nope"'])
        expect_refused("digest empty", ["blkhash-digest="], "blkhash-digest")
        for value in ("3000", "128M", "2K", "abc", "0", "65537", "-64K",
                      "1G"):
            expect_refused("block size " + value,
                           ["blkhash-block-size=" + value],
                           "blkhash-block-size")

        missing = os.path.join(tmp, "no-such-dir", "sum")
        expect_refused("file in a missing directory",
                       ["blkhash-file=" + missing], "blkhash-file",
                       ["does not exist"])
        check(not os.path.exists(os.path.dirname(missing)),
              "missing directory not created")

        target = os.path.join(tmp, "target")
        with open(target, "w") as f:
            f.write("keep me\n")
        link = os.path.join(tmp, "link")
        os.symlink(target, link)
        expect_refused("file is a symlink", ["blkhash-file=" + link],
                       "blkhash-file")
        check(os.path.islink(link) and open(target).read() == "keep me\n",
              "symlink and its target untouched")

        dangling = os.path.join(tmp, "dangling")
        os.symlink(os.path.join(tmp, "nowhere"), dangling)
        expect_refused("file is a dangling symlink",
                       ["blkhash-file=" + dangling], "blkhash-file")
        check(not os.path.exists(os.path.join(tmp, "nowhere")),
              "dangling symlink target not created")

        directory = os.path.join(tmp, "adir")
        os.mkdir(directory)
        expect_refused("file is a directory", ["blkhash-file=" + directory],
                       "blkhash-file")
        check(os.path.isdir(directory) and os.listdir(directory) == [],
              "directory untouched")

        expect_refused("file is empty", ["blkhash-file="], "blkhash-file")
        for key in ("blkhash-verify", "blkhash-fold"):
            expect_refused(key + " not a boolean", [key + "=maybe"], key,
                           ['"maybe"'])

        # This round's parameters.
        for params, parameter, words in (
                (["blkhash-file-format=xml"], "blkhash-file-format",
                 ['"xml" is not hex, sum or json']),
                (["blkhash-check-timeout=soon"], "blkhash-check-timeout", []),
                (["blkhash-max-exports=0"], "blkhash-max-exports", []),
                (["blkhash-defer=sometimes"], "blkhash-defer",
                 ['"sometimes" is not auto, always or never']),
                (["blkhash-defer-memory=lots"], "blkhash-defer-memory", []),
                (["blkhash-whole=nope"], "blkhash-whole", ['"nope"']),
                (["blkhash-whole-window=big"], "blkhash-whole-window", []),
                (["blkhash-expect=sha256:abc"], "blkhash-expect", ["3 hex"]),
                (["blkhash-whole=sha512", "blkhash-expect=sha256:" + "0" * 64],
                 "blkhash-expect", ["sha512"]),
                # blkhash-digest=none: only the whole-image digest.
                (["blkhash-digest=none"], "blkhash-digest",
                 ["nothing to compute"]),
                (["blkhash-digest=none", "blkhash-whole=sha256",
                  "blkhash-expect=" + "0" * 64], "blkhash-expect",
                 ["blkhash-digest=none"]),
                (["blkhash-digest=none", "blkhash-whole=sha256",
                  "blkhash-verify=true"], "blkhash-verify",
                 ["blkhash-digest=none"]),
                (["blkhash-digest=none", "blkhash-whole=sha256",
                  "blkhash-map=" + os.path.join(tmp, "m")], "blkhash-map",
                 ["blkhash-digest=none"]),
                (["blkhash-digest=none", "blkhash-whole=sha256",
                  "blkhash-expect-map=" + os.path.join(tmp, "m")],
                 "blkhash-expect-map", ["blkhash-digest=none"]),
                (["blkhash-digest=none", "blkhash-whole=sha256",
                  "blkhash-block-size=3K"], "blkhash-block-size", [])):
            expect_refused(" ".join(params), params, parameter, words)

        # Good values start and report the reference value.
        for params, digest, bs in (
                (["blkhash-block-size=4K"], "sha256", 4096),
                (["blkhash-block-size=64M"], "sha256", 64 << 20),
                (["blkhash-block-size=4096"], "sha256", 4096),
                (["blkhash-digest=xxh128"], "xxh128", 65536),
                (["blkhash-digest=blake2b512"], "blake2b512", 65536),
                (["blkhash-digest=shake128", "blkhash-block-size=1M"],
                 "shake128", 1 << 20)):
            what = "good " + " ".join(params)
            result = os.path.join(tmp, "good-sum")
            p = nbdkit(["file", image(IMAGE)],
                       params + ["blkhash-file=" + result],
                       run="echo STARTED", timeout=120)
            check(p.returncode == 0 and "STARTED" in p.stdout,
                  what + ": starts and runs", p.stderr)
            want = reference(image(IMAGE), digest, bs)
            reports = parse_reports(p.stderr)
            check(len(reports) == 1 and reports[0]["digest"] == want,
                  what + ": report == reference", p.stderr)
            check(os.path.exists(result)
                  and open(result).read() == want + "\n",
                  what + ": result file == reference")
            if os.path.exists(result):
                os.unlink(result)

        # An existing regular file at the path is fine (replaced).
        existing = os.path.join(tmp, "existing")
        with open(existing, "w") as f:
            f.write("old\n")
        p = nbdkit(["file", image(IMAGE)], ["blkhash-file=" + existing],
                   run="true")
        check(p.returncode == 0 and open(existing).read()
              == reference(image(IMAGE)) + "\n",
              "existing regular file is replaced", p.stderr)
    finish()


if __name__ == "__main__":
    main()
