#!/usr/bin/python3
"""Read side against ground truth: for every row of vectors.tsv (image,
digest, block size), nbdkit serves the vector image with the file plugin
through the filter, nbdcopy reads it all to null:, and the result file,
the report line's digest and its label/size must equal the row (values
computed by the real blksum, not by this project).

Rows are run two at a time (two independent nbdkit processes), one nbdkit
run per row.
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, finish, vectors, image, nbdkit,  # noqa: E402
                     parse_reports, tempdir)


def size_label(n):
    """Block size as the report writes it: 4K, 64K, 128K, 1M, 64M."""
    if n % (1 << 20) == 0:
        return "%dM" % (n >> 20)
    if n % (1 << 10) == 0:
        return "%dK" % (n >> 10)
    return str(n)


def block_size_arg(n, i):
    """Alternate between plain bytes and nbdkit's suffix syntax, so that
    both ways of writing the parameter are exercised."""
    return str(n) if i % 2 else size_label(n)


def run_row(i, row, tmp):
    result = os.path.join(tmp, "result-%d" % i)
    args = ["blkhash-digest=" + row["algorithm"],
            "blkhash-block-size=" + block_size_arg(row["block_size"], i),
            "blkhash-file=" + result]
    p = nbdkit(["file", image(row["name"])], args,
               run='nbdcopy "$uri" null:', timeout=300)
    content = None
    if os.path.exists(result):
        with open(result) as f:
            content = f.read()
    return p, content


def main():
    rows = vectors()
    check(len(rows) == 120, "vectors.tsv has 120 rows", len(rows))
    with tempdir() as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        futures = [(row, pool.submit(run_row, i, row, tmp))
                   for i, row in enumerate(rows)]
        for row, fut in futures:
            p, content = fut.result()
            what = "%s %s/%d" % (row["name"], row["algorithm"],
                                 row["block_size"])
            if not check(p.returncode == 0, what + ": nbdkit exit status",
                         p.stderr[-2000:]):
                continue
            check(content == row["digest"] + "\n",
                  what + ": result file == vector", repr(content))
            reports = parse_reports(p.stderr)
            if not check(len(reports) == 1, what + ": exactly one report",
                         p.stderr[-2000:]):
                continue
            r = reports[0]
            check(r["digest"] == row["digest"], what + ": report digest",
                  r["line"])
            label = "%s/%s" % (row["algorithm"], size_label(row["block_size"]))
            check(r["label"] == label, what + ": label " + label, r["line"])
            check(r.get("size") == str(row["size"]), what + ": size=",
                  r["line"])
            check(os.path.getsize(image(row["name"])) == row["size"],
                  what + ": image file has the vector's size")
            check(r["export"] == "", what + ": default export name",
                  r["line"])
            check(r.get("hashed", "").isdigit() and r.get("read", "").isdigit(),
                  what + ": hashed= and read= are numbers", r["line"])
    finish()


if __name__ == "__main__":
    main()
