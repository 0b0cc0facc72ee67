#!/usr/bin/python3
"""
Run a test after making sure the vector images exist.

Usage:  with_images.py IMAGES_DIR -- COMMAND [ARG...]

Makes the images of tests/data/images.tsv in IMAGES_DIR with
make_images.py (which verifies each against its recorded sha256 and is
cheap when they are already there), then replaces itself with COMMAND.

Why not a build target: meson before 1.7 (Debian 12 has 1.0) builds every
test dependency as part of the default target, so `meson compile` and
`meson install` would write the 1 GiB (sparse) images too.  Done here,
only `meson test` makes them.

Invariant: the images are made by one process at a time (an exclusive
lock on IMAGES_DIR.lock, held until make_images returns); tests running
in parallel wait for it and then see complete, verified images.
"""

import fcntl
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_images  # noqa: E402


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: with_images.py IMAGES_DIR -- COMMAND [ARG...]")
    images, command = sys.argv[1], sys.argv[3:]
    with open(images.rstrip("/") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        make_images.main([images])
        sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
