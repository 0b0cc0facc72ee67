#!/usr/bin/python3
"""Per-block verification against a block map (blkhash-expect-map).

The expected maps come from the independent Python writer
(blkhash_ref.write_map, hashlib) of the good image; one byte of the
image the client moves is changed.  Then:
- write side: nbdcopy of the corrupted image into a memory export fails
  (the request that completed the bad block gets EIO), the log names
  exactly the bad block, and the check's report says bad-blocks= with
  that block and verdict=mismatch; the good image passes;
- read side, the download case: qemu-img convert of a qcow2 file served
  by the loopback HTTP server through the curl plugin fails at the block
  holding the changed byte, every time (3 runs), and the client never
  gets the bytes of that block: a read of it fails again;
- the good qcow2 file converts and the check passes.
"""

import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (ENV, check, finish, nbdkit, parse_reports,  # noqa: E402
                     tempdir, blkhash_ref)
from test_verify import HttpServer  # noqa: E402

BLOCK = 65536


def bad_block_logged(stderr, block):
    """The error line of the request that found `block` bad."""
    return re.search(r"block\(s\) %d of sha256/64K do not match "
                     r"blkhash-expect-map" % block, stderr) is not None


def test_write_side(tmp, rng):
    good = bytearray(rng.randbytes(20 * BLOCK + 777))
    good[5 * BLOCK:7 * BLOCK] = bytes(2 * BLOCK)
    good_path = os.path.join(tmp, "good.raw")
    with open(good_path, "wb") as f:
        f.write(good)
    good_map = os.path.join(tmp, "good.map")
    root = blkhash_ref.write_map(good_path, good_map)
    bad_block = rng.randrange(8, 20)
    bad = bytearray(good)
    bad[bad_block * BLOCK + rng.randrange(BLOCK)] ^= 0x40
    bad_path = os.path.join(tmp, "bad.raw")
    with open(bad_path, "wb") as f:
        f.write(bad)

    copy = 'nbdcopy %s "$uri" && nbdinfo --list "$uri" >/dev/null'
    p = nbdkit(["memory", str(len(good))],
               ["blkhash-expect-map=" + good_map, "blkhash-expect=" + root],
               run=copy % bad_path)
    check(p.returncode != 0, "write side: copying the corrupted image fails",
          p.stderr[-1500:])
    check(bad_block_logged(p.stderr, bad_block),
          "write side: the log names exactly block %d" % bad_block,
          p.stderr[-1500:])
    # nbdcopy stops at the failed request: blocks it never wrote hold
    # zeros and differ from the map too, so they follow the bad one.
    reports = parse_reports(p.stderr)
    first = (reports[-1].get("bad-blocks", "") if reports else "")
    check(re.match(r"^%d(-[0-9]+)?(,|$)" % bad_block, first)
          and reports[-1].get("verdict") == "mismatch",
          "write side: the report's bad-blocks= starts with block %d, "
          "verdict mismatch" % bad_block,
          reports[-1:] if reports else p.stderr[-1500:])

    p = nbdkit(["memory", str(len(good))],
               ["blkhash-expect-map=" + good_map, "blkhash-expect=" + root],
               run=copy % good_path)
    r = parse_reports(p.stderr)
    check(p.returncode == 0 and r and r[-1].get("verdict") == "match"
          and "bad-blocks" not in r[-1],
          "write side: the good image passes", p.stderr[-1500:])


def qcow2_data_offset(qcow2):
    """A host offset in the qcow2 file holding guest data (qemu-img map)."""
    out = subprocess.run(["qemu-img", "map", "--output=json", qcow2],
                         capture_output=True, text=True, check=True,
                         env=ENV).stdout
    import json
    for extent in json.loads(out):
        if extent.get("data") and "offset" in extent:
            return extent["offset"] + extent["length"] // 2
    raise RuntimeError("no data in " + qcow2)


def test_read_side(tmp, rng):
    raw = os.path.join(tmp, "guest.raw")
    data = bytearray(8 << 20)
    for i in range(0, len(data), 1 << 20):
        if rng.random() < 0.6:
            data[i:i + (1 << 20)] = rng.randbytes(1 << 20)
    with open(raw, "wb") as f:
        f.write(data)
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    good = os.path.join(www, "good.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw,
                    good], check=True, env=ENV)
    good_map = os.path.join(tmp, "good-qcow2.map")
    root = blkhash_ref.write_map(good, good_map)
    with open(good, "rb") as f:
        content = bytearray(f.read())
    changed = qcow2_data_offset(good)
    content[changed] ^= 0x01
    with open(os.path.join(www, "bad.qcow2"), "wb") as f:
        f.write(content)
    bad_block = changed // BLOCK

    server = HttpServer(www, os.path.join(tmp, "http.log"))
    try:
        out = os.path.join(tmp, "out.raw")
        convert = ('qemu-img convert -f qcow2 "$uri" -O raw %s && '
                   'nbdinfo --list "$uri" >/dev/null' % out)
        for run in range(3):
            p = nbdkit(["curl", server.url("bad.qcow2"), "protocols=http"],
                       ["blkhash-expect-map=" + good_map,
                        "blkhash-expect=" + root],
                       run=convert + ' ; nbdsh -u "$uri" -c "h.pread(4096, %d)"'
                       % (bad_block * BLOCK), extra=["-r"])
            what = "read side, run %d" % run
            check("qemu-img: " in p.stderr and
                  bad_block_logged(p.stderr, bad_block),
                  what + ": qemu-img fails at block %d, named" % bad_block,
                  p.stderr[-1500:])
            check(p.returncode != 0 and "h.pread" not in p.stdout
                  and re.search(r"a block found bad against "
                                r"blkhash-expect-map earlier", p.stderr),
                  what + ": a later read of the bad block fails too",
                  p.stderr[-1500:])
        p = nbdkit(["curl", server.url("good.qcow2"), "protocols=http"],
                   ["blkhash-expect-map=" + good_map, "blkhash-expect=" + root],
                   run=convert, extra=["-r"])
        r = parse_reports(p.stderr)
        check(p.returncode == 0 and r and r[-1].get("verdict") == "match",
              "read side: the good qcow2 file converts and matches",
              p.stderr[-1500:])
    finally:
        server.stop()


def main():
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    with tempdir() as tmp:
        test_write_side(tmp, rng)
        test_read_side(tmp, rng)
    finish()


if __name__ == "__main__":
    main()
