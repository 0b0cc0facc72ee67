#!/usr/bin/python3
"""Block maps written by the filter (blkhash-map=FILE).

Every expected map comes from the independent Python writer
(blkhash_ref.write_map, hashlib): the two writers are canonical
(common/block_map.h), so the filter's map must be the same bytes.
- read side: nbdinfo --list over a file export (data, zero blocks, a short
  final block) makes the report, whose map is the Python map of the file,
  and the Python reader recomputes its root, which is the report's;
- write side: nbdcopy of the file into a memory export: the same map;
- a 1 TiB sparse memory export with a few writes: a map of under 1 KiB
  whose data leaves are hashlib's and whose root the Python reader
  recomputes and the report prints;
- blkhash-expect-map: a forged map (right format, one leaf changed, its
  root recomputed) is refused at start-up when blkhash-expect gives the
  true root; the true map gives verdict match; a forged map alone makes
  its root the expected one, so the verdict is mismatch;
- both parameters at once (one map built for the bad blocks and the
  file): the file is the Python map, of the bad image too, whose one bad
  block the report names;
- blkhash-map in a directory that does not exist is refused at start-up.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, nbdkit, parse_reports,  # noqa: E402
                     tempdir, blkhash_ref)


def sample(path, rng):
    data = bytearray()
    for i in range(40):
        data += bytes(65536) if i % 5 == 2 else rng.randbytes(65536)
    data += rng.randbytes(1000) + bytes(3000)
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def last_report(proc):
    reports = parse_reports(proc.stderr)
    return reports[-1] if reports else {}


def main():
    rng = random.Random(17)
    with tempdir() as tmp:
        src = os.path.join(tmp, "src.raw")
        sample(src, rng)
        want_map = os.path.join(tmp, "want.map")
        root = blkhash_ref.write_map(src, want_map)
        with open(want_map, "rb") as f:
            want = f.read()

        # Read side: the check reads the whole export.
        got_map = os.path.join(tmp, "read.map")
        p = nbdkit(["-r", "file", src], ["blkhash-map=" + got_map],
                   run='nbdinfo --list "$uri" >/dev/null')
        r = last_report(p)
        check(p.returncode == 0 and r.get("digest") == root,
              "read side: report", p.stderr)
        check(os.path.exists(got_map) and open(got_map, "rb").read() == want,
              "read side: the map is the Python map of the file")
        m = blkhash_ref.read_map(got_map, root)
        check(m.root.hex() == root, "read side: python reader recomputes")

        # Write side: nbdcopy into a memory export.
        got_map = os.path.join(tmp, "write.map")
        size = os.path.getsize(src)
        p = nbdkit(["memory", str(size)], ["blkhash-map=" + got_map],
                   run='nbdcopy "%s" "$uri" && nbdinfo --list "$uri" '
                       '>/dev/null' % src)
        r = last_report(p)
        check(p.returncode == 0 and r.get("digest") == root,
              "write side: report", p.stderr)
        check(os.path.exists(got_map) and open(got_map, "rb").read() == want,
              "write side: the map is the Python map of the source")

        # 1 TiB sparse memory export, a few writes.
        got_map = os.path.join(tmp, "sparse.map")
        blocks = {3: rng.randbytes(65536), 1 << 20: rng.randbytes(65536),
                  (1 << 24) - 1: rng.randbytes(65536)}
        writes = "; ".join("h.pwrite(bytes.fromhex('%s'), %d)" %
                           (data.hex(), b * 65536)
                           for b, data in blocks.items())
        script = os.path.join(tmp, "w.py")
        with open(script, "w") as f:
            f.write(writes + "\n")
        p = nbdkit(["memory", "1T"], ["blkhash-map=" + got_map],
                   run='nbdsh -u "$uri" -c "exec(open(\'%s\').read())" && '
                       'nbdinfo --list "$uri" >/dev/null' % script)
        r = last_report(p)
        check(p.returncode == 0 and r.get("digest", "") not in
              ("", "incomplete"), "1 TiB: report", p.stderr[-2000:])
        size = os.path.getsize(got_map) if os.path.exists(got_map) else -1
        print("1 TiB sparse export, 3 data blocks: map of %d bytes" % size)
        check(0 < size < 1024, "1 TiB: map size", size)
        if size > 0:
            m = blkhash_ref.read_map(got_map, r.get("digest"))
            data_runs = [(first, leaves) for kind, first, count, leaves
                         in m.runs if kind == b"D"]
            want_runs = [(b, [blkhash_ref.leaves(d).__next__()])
                         for b, d in sorted(blocks.items())]
            check(data_runs == want_runs, "1 TiB: the data leaves are "
                  "hashlib's", [r[0] for r in data_runs])

        # blkhash-expect-map: authenticated at start-up by blkhash-expect.
        forged = os.path.join(tmp, "forged.map")
        blkhash_ref.write_map(src, forged, forge=lambda b, leaf:
                              bytes(32) if b == 7 else leaf)
        p = nbdkit(["-r", "file", src], ["blkhash-expect-map=" + forged,
                                         "blkhash-expect=" + root],
                   run="true")
        check(p.returncode != 0 and "blkhash-expect-map:" in p.stderr and
              "expected" in p.stderr, "forged map refused with the root",
              p.stderr)
        p = nbdkit(["-r", "file", src], ["blkhash-expect-map=" + want_map,
                                         "blkhash-expect=" + root],
                   run='nbdinfo --list "$uri" >/dev/null')
        check(p.returncode == 0 and last_report(p).get("verdict") == "match",
              "the true map with its root: verdict match", p.stderr)
        # Both map parameters: one map serves the bad blocks and the file.
        both = os.path.join(tmp, "both.map")
        p = nbdkit(["-r", "file", src], ["blkhash-expect-map=" + want_map,
                                         "blkhash-expect=" + root,
                                         "blkhash-map=" + both],
                   run='nbdinfo --list "$uri" >/dev/null')
        check(p.returncode == 0 and last_report(p).get("verdict") == "match"
              and os.path.exists(both) and open(both, "rb").read() == want,
              "both map parameters, the true image: verdict match and "
              "the Python map", p.stderr)
        bad_src = os.path.join(tmp, "bad.raw")
        with open(src, "rb") as f:
            bad = bytearray(f.read())
        bad[9 * 65536 + 5] ^= 0x40
        with open(bad_src, "wb") as f:
            f.write(bytes(bad))
        bad_map = os.path.join(tmp, "bad-want.map")
        blkhash_ref.write_map(bad_src, bad_map)
        p = nbdkit(["-r", "file", bad_src], ["blkhash-expect-map=" + want_map,
                                             "blkhash-expect=" + root,
                                             "blkhash-map=" + both],
                   run='nbdinfo --list "$uri" >/dev/null')
        r = last_report(p)
        check(p.returncode != 0 and r.get("verdict") == "mismatch" and
              r.get("bad-blocks") == "9" and
              open(both, "rb").read() == open(bad_map, "rb").read(),
              "both map parameters, one bad block: bad-blocks=9 and the "
              "Python map of the bad image", p.stderr)

        # Without blkhash-expect the map's root is the expected root.
        p = nbdkit(["-r", "file", src], ["blkhash-expect-map=" + forged],
                   run='nbdinfo --list "$uri" >/dev/null')
        check(p.returncode != 0 and
              last_report(p).get("verdict") == "mismatch",
              "a forged map alone: verdict mismatch", p.stderr)

        # Refused at start-up: a directory that does not exist.
        p = nbdkit(["memory", "1M"],
                   ["blkhash-map=" + os.path.join(tmp, "no", "x.map")],
                   run="true")
        check(p.returncode != 0 and "blkhash-map: directory" in p.stderr,
              "bad blkhash-map directory refused", p.stderr)
    finish()


if __name__ == "__main__":
    main()
