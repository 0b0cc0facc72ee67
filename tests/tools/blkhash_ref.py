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
      DIGESTS: supported OpenSSL-style names
CLI:  blkhash_ref.py [-d DIGEST] [-b BLOCK_SIZE] [--leaves-file OUT] FILE...
      prints "<hex>  <file>" per file, like sha256sum / blksum.
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
    p.add_argument("files", nargs="+", metavar="FILE")
    a = p.parse_args(argv)
    try:
        bs = check_block_size(parse_size(a.block_size))
        _hasher(a.digest)
    except ValueError as e:
        p.error(str(e))
    if a.leaves_file and len(a.files) != 1:
        p.error("--leaves-file needs exactly one FILE")
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
