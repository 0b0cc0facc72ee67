#!/usr/bin/python3
"""Odd export sizes, a huge sparse export and hostile export names.

Proves:
  - exports of 0, 1, 4097 and 65537 bytes (memory plugin and file plugin;
    sha256/64K and xxh128/4K) written, trimmed and read give reports equal
    to the reference of the content read back; the short final block is
    hashed at its real length; the empty export reports
    H(LE64(0)) at shutdown (af5570f5... for sha256);
  - a 1 TiB memory export with a few writes, zeroes and trims reports
    within seconds (asserted < 60 s) and equals a reference computed here
    independently with hashlib from the spec's definition: the leaf of
    every block no one wrote is H(64K zero bytes), the touched blocks are
    hashed from a model of their content (checked against what the export
    reads back);
  - export names of 4096 bytes and names with control characters, quotes,
    backslashes, non-ASCII bytes and a forged report line produce
    well-formed report lines only (the check after each name's write
    reports that name once, and again each earlier name, whose content
    the write changed), with the name escaped (no raw control character
    in the log), cut at 256 bytes with "...";
  - two export names served by a plugin that ignores names (memory) alias
    the same content: a report under one name must still equal the
    content after writes under the other (see aliased_names_case).
"""

import hashlib
import os
import random
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, parse_reports, reference, tempdir  # noqa: E402,E501
from harness import no_crash  # noqa: E402
from traffic import Server, random_file_server  # noqa: E402

try:
    import xxhash
except ImportError:  # pragma: no cover
    xxhash = None

EMPTY_SHA256 = ("af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0"
                "e83dfc")
PARAMS = (("sha256", 65536), ("xxh128", 4096))


def label_of(digest, bs):
    return "%s/%dK" % (digest, bs // 1024)


# --- Sparse reference, independent of harness.reference ----------------------

class _Xxh128:
    """xxh128 with the hashlib interface: canonical big-endian digest."""

    def __init__(self, data=b""):
        self.h = xxhash.xxh3_128()
        self.h.update(data)

    def update(self, data):
        self.h.update(data)

    def digest(self):
        return self.h.digest()


def _new(digest, data=b""):
    if digest == "xxh128":
        return _Xxh128(data)
    return hashlib.new(digest, data)


def sparse_reference(size, bs, blocks, digest="sha256"):
    """blkhash of an image of `size` bytes that is zero except for
    `blocks` (block index -> that block's bytes, full length, or the
    final block's real length).  Untouched blocks use the zero leaf
    H(bs zero bytes); a short final block is hashed at its length."""
    n = (size + bs - 1) // bs
    zero_leaf = _new(digest, bytes(bs)).digest()
    outer = _new(digest)
    run = zero_leaf * 65536

    def zeros(count):
        while count:
            k = min(count, 65536)
            outer.update(run if k == 65536 else zero_leaf * k)
            count -= k

    position = 0
    for i in sorted(blocks) + [n]:
        if i > position:
            gap_end = i
            short_last = gap_end == n and size % bs
            zeros(gap_end - position - (1 if short_last else 0))
            if short_last:
                outer.update(_new(digest, bytes(size % bs)).digest())
        if i == n:
            break
        data = blocks[i]
        check(len(data) == min(bs, size - i * bs), "model block length")
        outer.update(_new(digest, bytes(data)).digest())
        position = i + 1
    outer.update(struct.pack("<Q", size))
    return outer.digest().hex()


class SparseModel:
    """Content of a mostly-zero export, block by block."""

    def __init__(self, size, bs):
        self.size, self.bs, self.blocks = size, bs, {}

    def _block(self, i):
        if i not in self.blocks:
            self.blocks[i] = bytearray(min(self.bs, self.size - i * self.bs))
        return self.blocks[i]

    def write(self, offset, data):
        pos = 0
        while pos < len(data):
            i, off = divmod(offset + pos, self.bs)
            blk = self._block(i)
            n = min(len(blk) - off, len(data) - pos)
            blk[off:off + n] = data[pos:pos + n]
            pos += n

    def zero(self, offset, length):
        self.write(offset, bytes(length))


# --- Sizes ----------------------------------------------------------------------

def memory_size_case(size, digest, bs, seed):
    what = "memory size=%d %s" % (size, label_of(digest, bs))
    rng = random.Random(seed)
    with tempdir() as tmp:
        srv = Server(tmp, ["memory", "size=%d" % size],
                     ["blkhash-digest=" + digest,
                      "blkhash-block-size=%d" % bs])
        finals = []
        try:
            h = srv.connect()
            check(h.get_size() == size, what + ": size")
            if size:
                data = rng.randbytes(size)
                a = size // 2 + 3 if size > 1 else 1
                b = size // 3
                h.pwrite(data[:a], 0)          # overlapping, unaligned
                h.pwrite(data[b:], b)
            h.shutdown()
            del h
            if size:
                # Each writing session gets one report (at its disconnect
                # or by the check); reading back changes nothing, so it
                # gets none.
                srv.settle()
                finals.append(srv.read_back())
                h = srv.connect()
                h.trim(size, 0)                 # reads back as zeros
                h.pwrite(b"\x5a", size - 1)
                h.shutdown()
                del h
                srv.settle()
                finals.append(srv.read_back())
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
        reports = parse_reports(log)
        if size == 0:
            expected = reference(b"", digest, bs)
            if digest == "sha256":
                check(expected == EMPTY_SHA256, "reference of the empty image")
            check(len(reports) == 1 and reports[0]["digest"] == expected and
                  reports[0].get("size") == "0",
                  what + ": one report, at shutdown, of the empty image",
                  [r["line"] for r in reports])
            return
        check(len(reports) == 2, what + ": two reports, one per writing "
              "session", [r["line"] for r in reports])
        if len(finals) == 2 and len(reports) == 2:
            check(finals[1] == bytes(size - 1) + b"\x5a",
                  what + ": trim reads back as zeros")
            for k, r in enumerate(reports):
                expected = reference(finals[k], digest, bs)
                check(r["digest"] == expected and
                      r["label"] == label_of(digest, bs) and
                      r.get("size") == str(size),
                      what + ": report %d equals the reference" % (k + 1),
                      "%s != %s" % (r["line"], expected))


def file_size_case(size, digest, bs, seed):
    what = "file of %d bytes %s" % (size, label_of(digest, bs))
    rng = random.Random(seed)
    with tempdir() as tmp:
        path, srv = random_file_server(tmp, rng, size, digest, bs)
        try:
            h = srv.connect()
            if size:
                h.pread(1, size - 1)
            if size > 1:
                h.pwrite(b"\x00\x01", size // 2 - 1)
            h.shutdown()
            del h
            srv.settle()
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
        reports = parse_reports(log)
        expected = reference(path, digest, bs)
        check(len(reports) == 1 and reports[0]["digest"] == expected and
              reports[0].get("size") == str(size),
              what + ": one report equal to the reference of the file",
              "%s != %s" % ([r["line"] for r in reports], expected))


# --- 1 TiB --------------------------------------------------------------------

def huge_case(digest, seed):
    size, bs = 1 << 40, 65536
    what = "memory 1T %s" % label_of(digest, bs)
    rng = random.Random(seed)
    model = SparseModel(size, bs)
    with tempdir() as tmp:
        srv = Server(tmp, ["memory", "size=%d" % size],
                     ["blkhash-digest=" + digest])
        elapsed = None
        read_ok = None
        try:
            h = srv.connect()

            def write(offset, n):
                data = rng.randbytes(n)
                h.pwrite(data, offset)
                model.write(offset, data)

            def zero(offset, n):
                h.zero(n, offset)
                model.zero(offset, n)

            def trim(offset, n):
                h.trim(n, offset)   # the memory plugin reads back zeros
                model.zero(offset, n)

            write(0, 1000)
            write((5 << 30) - 100, 200000)
            write(size - 1, 1)
            write((700 << 30) + 12345, 70000)
            zero((700 << 30) + 20000, 10000)
            trim((5 << 30) + 65536, 65536)
            trim((5 << 30) + 1000, 3000)
            zero(300 << 30, 1 << 20)
            write((900 << 30) + 65536 * 3, 65536 * 2)
            t0 = time.time()
            h.shutdown()
            del h
            reports = srv.settle()
            if reports:
                elapsed = time.time() - t0
            # The model against the plugin (reads only the touched blocks).
            h = srv.connect()
            read_ok = all(
                h.pread(len(blk), i * bs) == bytes(blk)
                for i, blk in sorted(model.blocks.items()))
            h.shutdown()
            del h
            srv.settle()       # reads change nothing: no report is due
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
        check(read_ok, what + ": the model equals what the export reads")
        check(elapsed is not None and elapsed < 60,
              what + ": report within 60 s", elapsed)
        expected = sparse_reference(size, bs, model.blocks, digest)
        reports = parse_reports(log)
        check(len(reports) == 1, what + ": one report (the reader's "
              "session changes nothing)", [r["line"] for r in reports])
        for r in reports:
            check(r["digest"] == expected and r.get("size") == str(size),
                  what + ": report equals the sparse reference",
                  "%s != %s" % (r["line"], expected))
        print("%s: report after %.1f s (%d touched blocks)" %
              (what, elapsed or -1, len(model.blocks)), flush=True)


def sparse_reference_self_check():
    """sparse_reference agrees with harness.reference on small images."""
    rng = random.Random(7)
    for digest, bs in PARAMS:
        for size in (4096, 5 * bs + 77, 9 * bs):
            model = SparseModel(size, bs)
            dense = bytearray(size)
            for _ in range(3):
                n = rng.randint(1, min(size, 3 * bs))
                off = rng.randrange(0, size - n + 1)
                data = rng.randbytes(n)
                model.write(off, data)
                dense[off:off + n] = data
            check(sparse_reference(size, bs, model.blocks, digest) ==
                  reference(bytes(dense), digest, bs),
                  "sparse reference self-check %s size %d" %
                  (label_of(digest, bs), size))


# --- Names ----------------------------------------------------------------------

NAMES = [
    "a" * 4096,
    "b" * 300 + "\n" + "c" * 10,
    "line\nbreak",
    "cr\rreturn",
    "tab\there",
    "\x1b[31mred\x1b[0m",
    "ctl \x01\x02\x1f\x7f",
    'quote" and back\\slash \\x41',
    "forged\nnbdkit: blkhash: sha256/64K " + "0" * 64 +
    ' export="x" size=1 hashed=0 read=0',
    "\u00e9t\u00e9 \u65e5\u672c",
    "",
]

LINE_RE = re.compile(
    r'^nbdkit: blkhash: sha256/64K [0-9a-f]{64} export="((?:[^"\\]|\\.)*)" '
    r'size=\d+ hashed=\d+ read=\d+( unfolded=\d+)? verdict=computed$')


def unescape(field):
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\":
            if field[i + 1] == "x":
                out.append(int(field[i + 2:i + 4], 16))
                i += 4
            else:
                out += field[i + 1].encode()
                i += 2
        else:
            out += c.encode()
            i += 1
    return bytes(out)


def blkhash_lines(log):
    return [ln for ln in log.splitlines() if "blkhash:" in ln]


def names_case(seed):
    what = "export names"
    size = 1 << 20
    rng = random.Random(seed)
    content = bytearray(size)  # the memory plugin serves one disk to all
    expected = []
    by_check = []              # the lines each check added
    with tempdir() as tmp:
        srv = Server(tmp, ["memory", "size=%d" % size], [])
        try:
            for k, name in enumerate(NAMES):
                h = srv.connect(name)
                data = rng.randbytes(5000)
                offset = k * 8192 + 17
                h.pwrite(data, offset)
                content[offset:offset + len(data)] = data
                h.shutdown()
                del h
                before = len(blkhash_lines(srv.log()))
                srv.settle()
                by_check.append(blkhash_lines(srv.log())[before:])
                expected.append(reference(bytes(content)))
            checked = len(blkhash_lines(srv.log()))
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
    raw = log.encode("utf-8", "replace")
    check(not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw),
          what + ": no raw control character in nbdkit's log",
          re.findall(rb".{0,20}[\x00-\x09\x0b-\x1f\x7f].{0,20}", raw)[:3])
    # The check after name k's write reports name k, and again every
    # earlier name (the same disk: its content changed): every line well
    # formed and equal to the content at that time.  Nothing changed after
    # the last check: any report at shutdown is of the final content.
    final = reference(bytes(content))
    for line in blkhash_lines(log)[checked:]:
        check(LINE_RE.match(line) and line.split()[3] == final,
              what + ": shutdown report well formed and right", line[:200])
    for k, name in enumerate(NAMES):
        if k >= len(by_check):
            break
        encoded = name.encode("utf-8")
        want_field = (encoded[:256], True) if len(encoded) > 256 \
            else (encoded, False)
        mine = []
        for line in by_check[k]:
            m = LINE_RE.match(line)
            if not check(m, what + ": check %d: line well formed" % k,
                         line[:400]):
                continue
            check(line.split()[3] == expected[k],
                  what + ": check %d: report equals the reference" % k,
                  line[:200])
            field = m.group(1)
            cut = field.endswith("...") and len(field) > 256
            if (unescape(field[:-3]) if cut else unescape(field),
                    cut) == want_field:
                mine.append(line)
        check(len(mine) == 1, what + ": check %d reports name %d once, "
              "escaped faithfully%s" % (k, k, ", cut at 256 bytes with ..."
                                         if want_field[1] else ""),
              [l[:120] for l in by_check[k]])


def aliased_names_case(seed):
    """The memory plugin (like file, and most plugins) serves the same
    content whatever export name the client asks for.  Writes through
    export "b" change what export "a" contains, so a later report under
    "a" must reflect them (or be incomplete), not the blocks "a" saw."""
    what = "aliased export names"
    size = 1 << 20
    rng = random.Random(seed)
    with tempdir() as tmp:
        srv = Server(tmp, ["memory", "size=%d" % size], [])
        final = None
        try:
            h = srv.connect("a")
            h.pwrite(rng.randbytes(65536), 0)
            h.shutdown()
            del h
            srv.settle()
            h = srv.connect("b")
            h.pwrite(rng.randbytes(65536), 0)
            h.shutdown()
            del h
            srv.settle()
            h = srv.connect("a")
            h.pread(512, 5 * 65536)
            h.shutdown()
            del h
            srv.settle()
            final = srv.read_back("c")
        finally:
            rc, log = srv.stop()
        no_crash(rc, log, what)
    reports = parse_reports(log)
    check(len(reports) >= 3 and reports[0]["export"] == "a"
          and {"b", "c"} <= {r["export"] for r in reports},
          what + ": reports of a, b and c", [r["line"] for r in reports])
    if final is not None:
        expected = reference(final)
        for r in reports[1:]:
            check(r["digest"] in (expected, "incomplete"),
                  what + ": report under %s equals the shared content" %
                  r["export"], "%s != %s" % (r["line"], expected))


def main():
    start = time.time()
    sparse_reference_self_check()
    seed = 1
    for size in (0, 1, 4097, 65537):
        for digest, bs in PARAMS:
            memory_size_case(size, digest, bs, seed)
            file_size_case(size, digest, bs, seed + 100)
            seed += 1
    for digest in ("sha256", "xxh128"):
        huge_case(digest, 1000 + seed)
    names_case(2000)
    aliased_names_case(3000)
    print("total %.1f s" % (time.time() - start))
    finish()


if __name__ == "__main__":
    main()
