#!/usr/bin/python3
"""
Independent pure-Python reference implementation of blkhash (0.10+).

Definition (digest H, block size B, image bytes M of length L):

    leaf i = H(M[i*B : min((i+1)*B, L)])     for i in 0 .. ceil(L/B)-1
    root   = H(leaf 0 || ... || leaf n-1 || LE64(L))

Invariants:
  * leaves are full binary digests at the digest's default output length
    (XOFs: shake128 -> 16 bytes, shake256 -> 32 bytes);
  * the final block is hashed at its real length, even if it is all zeros;
  * LE64(L) is always appended (also for L == 0 or L % B == 0);
  * xxh128 (our extension) = XXH3 128-bit, canonical big-endian 16 bytes.
This module deliberately has no zero-block shortcut: it hashes every byte,
so that it stays obviously equal to the definition. Files are streamed one
block at a time (never loaded whole).

API:  blkhash(data_or_file, digest="sha256", block_size=65536) -> hex str
      leaves(data_or_file, digest, block_size) -> iterator of leaf bytes
      outer_input(...) -> bytes  (leaf0 || ... || LE64(L))
      write_map(data_or_file, out_path, digest, block_size) -> root hex
      read_map(path, expected_root_hex=None) -> BlockMap (checked)
      DIGESTS: supported OpenSSL-style names
CLI:  blkhash_ref.py [-d DIGEST] [-b BLOCK_SIZE] [--leaves-file OUT] FILE...
      prints "<hex>  <file>" per file, like sha256sum / blksum.
      blkhash_ref.py [-d/-b] --write-map OUT FILE   writes FILE's block map
      blkhash_ref.py --read-map MAP [--root HEX]    checks it, prints root

Block maps (the format of common/block_map.h, written here from its
documentation only; integers little-endian):
    "BLKHMAP\0", u32 version 1, u32 block size, u64 image size,
    u8 name length n, u8 digest size d, name, root (d bytes),
    then records until ceil(L/B) blocks are covered:
    u8 'D' or 'Z', u64 count, and for 'D' count leaves of d bytes.
    A 'Z' block's leaf is H(its length in zeros).  Canonical writers make
    runs maximal and put every block whose leaf is its zero leaf in a 'Z'.
"""

import argparse
import hashlib
import os
import struct
import sys

try:
    import xxhash  # Debian python3-xxhash; only needed for xxh128
except ImportError:  # pragma: no cover
    xxhash = None

DEFAULT_DIGEST = "sha256"
DEFAULT_BLOCK_SIZE = 64 * 1024
MIN_BLOCK_SIZE = 4 * 1024
MAX_BLOCK_SIZE = 64 * 1024 * 1024

# OpenSSL name -> (hashlib name, output length for XOFs or None).
_HASHLIB = {
    "sha256": ("sha256", None),
    "sha1": ("sha1", None),
    "md5": ("md5", None),
    "sha224": ("sha224", None),
    "sha384": ("sha384", None),
    "sha512": ("sha512", None),
    "sha512-224": ("sha512_224", None),
    "sha512-256": ("sha512_256", None),
    "sha3-224": ("sha3_224", None),
    "sha3-256": ("sha3_256", None),
    "sha3-384": ("sha3_384", None),
    "sha3-512": ("sha3_512", None),
    "blake2b512": ("blake2b", None),   # hashlib default: 64 bytes
    "blake2s256": ("blake2s", None),   # hashlib default: 32 bytes
    "shake128": ("shake_128", 16),
    "shake256": ("shake_256", 32),
    "sm3": ("sm3", None),              # only if OpenSSL provides it
    "ripemd160": ("ripemd160", None),  # only if OpenSSL provides it
}


def _available(hname):
    try:
        hashlib.new(hname)
        return True
    except (ValueError, TypeError):
        return False


DIGESTS = [n for n, (h, _) in _HASHLIB.items() if _available(h)]
if xxhash is not None and hasattr(xxhash, "xxh3_128"):
    DIGESTS.append("xxh128")


def _hasher(digest):
    """Return a function bytes -> digest bytes, and a factory of streaming
    hash objects exposing update() and a finish() -> bytes callable."""
    if digest == "xxh128":
        if "xxh128" not in DIGESTS:
            raise ValueError("xxh128 needs the python xxhash module")
        new = xxhash.xxh3_128
        # .digest() is the canonical big-endian form (XXH128_canonicalFromHash)
        return (lambda b: new(b).digest()), (lambda h: h.digest()), new
    if digest not in _HASHLIB or digest not in DIGESTS:
        raise ValueError("unknown or unavailable digest: %r" % (digest,))
    hname, xof_len = _HASHLIB[digest]
    if xof_len is None:
        fin = lambda h: h.digest()
    else:
        fin = lambda h: h.digest(xof_len)
    new = lambda data=b"": hashlib.new(hname, data)
    return (lambda b: fin(new(b))), fin, new


def digest_size(digest):
    """Length in bytes of a leaf / root for this digest."""
    one, _, _ = _hasher(digest)
    return len(one(b""))


def check_block_size(block_size):
    bs = int(block_size)
    if bs < MIN_BLOCK_SIZE or bs > MAX_BLOCK_SIZE or bs & (bs - 1):
        raise ValueError("block size must be a power of two in [4K, 64M]: %d"
                         % bs)
    return bs


def _blocks(src, block_size):
    """Yield (block bytes) from bytes-like, path, or binary file object.
    Yields nothing for an empty input; only the last block may be short."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        mv = memoryview(src).cast("B")
        for off in range(0, len(mv), block_size):
            yield mv[off:off + block_size]
        return
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            yield from _blocks(f, block_size)
        return
    # binary file object: read full blocks (retry short reads until EOF)
    while True:
        buf = src.read(block_size)
        if not buf:
            return
        while len(buf) < block_size:
            more = src.read(block_size - len(buf))
            if not more:
                break
            buf += more
        yield buf
        if len(buf) < block_size:
            return


def _walk(src, digest, block_size):
    """Yield each leaf in block order; return the total length L."""
    bs = check_block_size(block_size)
    one, _, _ = _hasher(digest)
    length = 0
    for block in _blocks(src, bs):
        length += len(block)
        yield one(block)
    return length


def leaves(src, digest=DEFAULT_DIGEST, block_size=DEFAULT_BLOCK_SIZE):
    """Iterator of the leaf digests (bytes), in block order."""
    yield from _walk(src, digest, block_size)


def _root(src, digest, block_size, sink=None):
    """Compute the root digest bytes; optionally copy the outer hash's input
    (leaves || LE64(L)) to sink.write()."""
    _, fin, new = _hasher(digest)
    outer = new()
    gen = _walk(src, digest, block_size)
    while True:
        try:
            leaf = next(gen)
        except StopIteration as stop:
            length = stop.value
            break
        outer.update(leaf)
        if sink is not None:
            sink.write(leaf)
    trailer = struct.pack("<Q", length)
    outer.update(trailer)
    if sink is not None:
        sink.write(trailer)
    return fin(outer)


def blkhash(src, digest=DEFAULT_DIGEST, block_size=DEFAULT_BLOCK_SIZE):
    """blkhash of bytes / path / binary file object, as lowercase hex."""
    return _root(src, digest, block_size).hex()


def outer_input(src, digest=DEFAULT_DIGEST, block_size=DEFAULT_BLOCK_SIZE):
    """The exact bytes the outer hash consumes: leaf0||...||LE64(L)."""
    import io
    buf = io.BytesIO()
    _root(src, digest, block_size, sink=buf)
    return buf.getvalue()


MAP_MAGIC = b"BLKHMAP\0"
MAP_VERSION = 1


def write_map(src, out_path, digest=DEFAULT_DIGEST,
              block_size=DEFAULT_BLOCK_SIZE, forge=None):
    """Write the canonical block map of src (bytes / path / file object)
    to out_path; return the root (hex).  Every block is hashed (hashlib),
    and a block whose leaf is H(its length in zeros) goes in a zero run.
    forge: optional function (block, leaf) -> leaf, to write a map with
    chosen leaves (its root is recomputed from them, as a forger would)."""
    bs = check_block_size(block_size)
    one, fin, new = _hasher(digest)
    full_zero = one(bytes(bs))
    outer = new()
    runs = []  # [type, count, [leaves]]
    length = 0
    for index, block in enumerate(_blocks(src, bs)):
        length += len(block)
        leaf = one(block)
        if forge is not None:
            leaf = forge(index, leaf)
        outer.update(leaf)
        zero = full_zero if len(block) == bs else one(bytes(len(block)))
        kind = b"Z" if leaf == zero else b"D"
        if not runs or runs[-1][0] != kind:
            runs.append([kind, 0, []])
        runs[-1][1] += 1
        if kind == b"D":
            runs[-1][2].append(leaf)
    outer.update(struct.pack("<Q", length))
    root = fin(outer)
    name = digest.encode("ascii")
    with open(out_path, "wb") as out:
        out.write(MAP_MAGIC + struct.pack("<IIQBB", MAP_VERSION, bs, length,
                                          len(name), len(root)))
        out.write(name + root)
        for kind, count, run_leaves in runs:
            out.write(kind + struct.pack("<Q", count))
            out.write(b"".join(run_leaves))
    return root.hex()


class MapError(ValueError):
    pass


class BlockMap:
    """A block map read by read_map(): digest, block_size, size, root
    (bytes), runs: list of (kind, first block, count, leaves or None)."""

    def __init__(self, digest, block_size, size, root, runs):
        self.digest, self.block_size, self.size = digest, block_size, size
        self.root, self.runs = root, runs
        one, _, _ = _hasher(digest)
        self._one = one

    def block_count(self):
        return (self.size + self.block_size - 1) // self.block_size

    def zero_leaf(self, block):
        n = min(self.block_size, self.size - block * self.block_size)
        return self._one(bytes(n))

    def leaf(self, block):
        for kind, first, count, run_leaves in self.runs:
            if first <= block < first + count:
                if kind == b"Z":
                    return self.zero_leaf(block)
                return run_leaves[block - first]
        raise IndexError(block)

    def iter_leaves(self):
        """Every leaf in block order (zero runs expanded: small maps)."""
        for kind, first, count, run_leaves in self.runs:
            if kind == b"Z":
                for b in range(first, first + count):
                    yield self.zero_leaf(b)
            else:
                yield from run_leaves


def read_map(path, expected_root=None):
    """Read and check a block map: the root must recompute from the leaves
    and, if expected_root (hex) is given, be it.  Raises MapError."""
    with open(path, "rb") as f:
        data = f.read()
    at = [0]

    def take(n):
        if at[0] + n > len(data):
            raise MapError("truncated map")
        out = data[at[0]:at[0] + n]
        at[0] += n
        return out

    if take(8) != MAP_MAGIC:
        raise MapError("bad magic")
    version, bs, size, n, d = struct.unpack("<IIQBB", take(18))
    if version != MAP_VERSION:
        raise MapError("version %d" % version)
    check_block_size(bs)
    digest = take(n).decode("ascii")
    root = take(d)
    one, fin, new = _hasher(digest)
    if len(one(b"")) != d:
        raise MapError("digest size %d" % d)
    blocks = (size + bs - 1) // bs
    outer = new()
    runs = []
    block = 0
    full_zero = one(bytes(bs))
    while block < blocks:
        kind = take(1)
        (count,) = struct.unpack("<Q", take(8))
        if count == 0 or count > blocks - block:
            raise MapError("bad run length at block %d" % block)
        if kind == b"Z":
            short = block + count == blocks and size % bs != 0
            left = count - short
            chunk = full_zero * min(left, 65536)
            while left > 0:
                n = min(left, 65536)
                outer.update(chunk if n == 65536 else full_zero * n)
                left -= n
            if short:
                outer.update(one(bytes(size % bs)))
            runs.append((kind, block, count, None))
        elif kind == b"D":
            raw = take(count * d)
            run_leaves = [raw[i * d:(i + 1) * d] for i in range(count)]
            outer.update(raw)
            runs.append((kind, block, count, run_leaves))
        else:
            raise MapError("bad record type at block %d" % block)
        block += count
    if at[0] != len(data):
        raise MapError("bytes after the last record")
    outer.update(struct.pack("<Q", size))
    if fin(outer) != root:
        raise MapError("root does not recompute")
    if expected_root is not None and root.hex() != expected_root.lower():
        raise MapError("root is not the expected one")
    return BlockMap(digest, bs, size, root, runs)


def parse_size(text):
    """'65536', '64K', '1M', '64k' -> int (nbdkit-style suffixes)."""
    t = text.strip()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if t and t[-1].lower() in mult:
        return int(t[:-1]) * mult[t[-1].lower()]
    return int(t)


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Reference blkhash: prints '<hex>  <file>' per file.")
    p.add_argument("-d", "--digest", default=DEFAULT_DIGEST,
                   help="digest name (default sha256); one of: "
                        + ", ".join(DIGESTS))
    p.add_argument("-b", "--block-size", default=str(DEFAULT_BLOCK_SIZE),
                   help="block size, e.g. 65536, 64K, 1M (default 64K)")
    p.add_argument("--leaves-file", metavar="OUT",
                   help="write leaf0||...||LE64(size) (the outer hash input) "
                        "to OUT; only with a single FILE")
    p.add_argument("--write-map", metavar="OUT",
                   help="write the block map of the single FILE to OUT")
    p.add_argument("--read-map", metavar="MAP",
                   help="check MAP (root recomputes) and print its root")
    p.add_argument("--root", metavar="HEX",
                   help="with --read-map: the root MAP must have")
    p.add_argument("files", nargs="*", metavar="FILE")
    a = p.parse_args(argv)
    if a.read_map:
        try:
            m = read_map(a.read_map, a.root)
        except (MapError, ValueError) as e:
            print("blkhash_ref.py: %s: %s" % (a.read_map, e), file=sys.stderr)
            return 1
        print("%s  %s" % (m.root.hex(), a.read_map))
        return 0
    if not a.files:
        p.error("no FILE")
    try:
        bs = check_block_size(parse_size(a.block_size))
        _hasher(a.digest)
    except ValueError as e:
        p.error(str(e))
    if (a.leaves_file or a.write_map) and len(a.files) != 1:
        p.error("--leaves-file and --write-map need exactly one FILE")
    if a.write_map:
        root = write_map(a.files[0], a.write_map, a.digest, bs)
        print("%s  %s" % (root, a.files[0]))
        return 0
    for name in a.files:
        if a.leaves_file:
            with open(a.leaves_file, "wb") as sink:
                root = _root(name, a.digest, bs, sink=sink)
        else:
            root = _root(name, a.digest, bs)
        print("%s  %s" % (root.hex(), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
