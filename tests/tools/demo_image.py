#!/usr/bin/python3
"""The demo's disk image: what scripts/demo converts, and what the
examples in README.md and the man page show the values of.

    demo_image.py [DIR]

writes DIR/src.qcow2 (a 256 MiB virtual disk in qcow2 format) and
DIR/disk.img (the same disk as a sparse raw image) into DIR (default: the
current directory), and prints one line saying what it wrote.

The content is fixed: five runs of pseudo-random data (Python's
random.Random(2024)), block-aligned, 4K-aligned and unaligned ones, and up
to the very end of the disk; everything else is holes.  So the checksum of
the disk is always the same, and the examples' output can be compared with
what the documents show.  The raw image is written directly; the qcow2
file is made from it by qemu-img convert.
"""

import os
import random
import subprocess
import sys

MiB = 1024 * 1024
SIZE = 256 * MiB
# (offset, length) of the data runs; the rest is holes.
REGIONS = [
    (0, 1 * MiB),                  # the start
    (5 * MiB + 4096, 3 * MiB),     # 4K-aligned, not block-aligned
    (64 * MiB + 12345, 777777),    # unaligned at both ends
    (100 * MiB, 16 * MiB),         # a large run
    (SIZE - 100000, 100000),       # up to the very end
]
SEED = 2024


def write_raw(path):
    """Writes the disk as a sparse raw file at `path`."""
    rng = random.Random(SEED)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for offset, length in REGIONS:
            f.seek(offset)
            f.write(rng.randbytes(length))


def main(argv):
    directory = argv[1] if len(argv) > 1 else "."
    raw = os.path.join(directory, "disk.img")
    qcow2 = os.path.join(directory, "src.qcow2")
    write_raw(raw)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                    raw, qcow2], check=True)
    data = sum(length for _, length in REGIONS)
    print("wrote %s and %s: %d MiB virtual, %d data runs (%d bytes), "
          "the rest holes" % (qcow2, raw, SIZE // MiB, len(REGIONS), data))


if __name__ == "__main__":
    main(sys.argv)
