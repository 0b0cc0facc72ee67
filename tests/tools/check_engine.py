#!/usr/bin/python3
"""
Check the C++ blkhash engine (via blkhash-tool) against the independent
pure-Python reference blkhash_ref.py -- never against itself.

Usage:  check_engine.py --tool PATH/blkhash-tool

1. For every digest in blkhash_ref.DIGESTS, block sizes 4096 and 65536, and
   a set of deterministic generated inputs (empty, 1 byte, 4095/4096/4097,
   65536, 3*65536+1000 ending in zeros, 1 MiB with zero blocks mixed in, an
   all-zero file, 2 MiB+123 random), the tool's root in --mode stream and in
   --mode table (several --seed values: random chunking, random order) must
   equal blkhash_ref.blkhash(), printed as exactly "<lowercase hex>\\n".
2. xxh128: the tool's root must equal `xxhsum -H2` of the outer-hash input
   written by `blkhash_ref.py --leaves-file`, and every --xxh3-kernel the CPU
   supports must give the same root (a kernel refused with exit 2 is
   skipped).
3. Unknown digests make the tool exit 2 and name the digest on stderr.

Prints one "FAIL: ..." line per failure and ends with
"N passed, M failed[, K skipped]"; exits 1 if anything failed.
"""

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
sys.dont_write_bytecode = True  # keep the source tree clean
import blkhash_ref  # noqa: E402

# Every digest the engine is meant to support; those the reference lacks
# (e.g. sm3 / ripemd160 without the OpenSSL legacy provider) are skipped.
WANTED_DIGESTS = [
    "sha256", "sha1", "md5", "sha224", "sha384", "sha512", "sha512-224",
    "sha512-256", "sha3-224", "sha3-256", "sha3-384", "sha3-512",
    "blake2b512", "blake2s256", "shake128", "shake256", "sm3", "ripemd160",
    "xxh128",
]
# block size in bytes -> how it is spelled on the tool's command line
# (one plain number, one with an nbdkit-style suffix).
BLOCK_SIZES = {4096: "4096", 65536: "64K"}
TABLE_SEEDS = [1, 20240601]
XXH3_KERNELS = ["sse2", "avx2", "avx512"]
UNKNOWN_DIGESTS = ["sha257", "no-such-digest"]
SEED = 0xB1C4A5  # fixed: inputs are identical on every run
TIMEOUT = 60
HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


class Results:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: " + what, flush=True)
        return cond

    def skip(self, what):
        self.skipped += 1
        print("SKIP: " + what, flush=True)

    def summary(self):
        s = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            s += ", %d skipped" % self.skipped
        return s


def make_inputs(tmp):
    """Write the deterministic test inputs; return [(label, path)]."""
    rnd = random.Random(SEED)
    data = {}
    data["empty"] = b""
    data["1"] = rnd.randbytes(1)
    for n in (4095, 4096, 4097, 65536):
        data[str(n)] = rnd.randbytes(n)
    # 3*64K+1000: random head, then zeros: whole zero 4K blocks and a short
    # all-zero final block (must be hashed at its real length, not as Z).
    n = 3 * 65536 + 1000
    data["3x64K+1000-zero-tail"] = rnd.randbytes(n - 9192) + bytes(9192)
    # 1 MiB with zero blocks mixed in: 4K chunks, some zero, including
    # whole zero 64K blocks, zero 4K blocks inside 64K blocks, and a 64K
    # block that is zero except for one byte.
    mib = bytearray(rnd.randbytes(1 << 20))
    for blk in (1, 5, 6, 15):                      # whole 64K blocks
        mib[blk * 65536:(blk + 1) * 65536] = bytes(65536)
    for i in range(0, 256, 7):                     # scattered 4K blocks
        mib[i * 4096:(i + 1) * 4096] = bytes(4096)
    mib[9 * 65536:10 * 65536] = bytes(65536)
    mib[9 * 65536 + 40000] = 1                     # almost-zero block
    data["1M-mixed-zeros"] = bytes(mib)
    data["zeros-200K+7"] = bytes(200 * 1024 + 7)
    data["2M+123"] = rnd.randbytes((2 << 20) + 123)
    out = []
    for label, blob in data.items():
        path = Path(tmp) / ("in-" + label)
        path.write_bytes(blob)
        out.append((label, path))
    return out


def run_tool(tool, *args):
    return subprocess.run([tool, *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def describe(proc):
    err = proc.stderr.strip().replace("\n", " | ")
    return "exit %d, stdout %r, stderr %r" % (proc.returncode, proc.stdout,
                                               err[:200])


def check_root(res, tool, args, expected, what):
    """The tool must exit 0 and print exactly expected + newline."""
    proc = run_tool(tool, *args)
    good = proc.returncode == 0 and proc.stdout == expected + "\n"
    res.ok(good, "%s: expected %s, got %s" % (what, expected, describe(proc)))
    return proc.stdout.strip() if proc.returncode == 0 else None


def xxhsum_h2(path):
    """Canonical big-endian XXH128 hex of a file via xxhsum: first hex field
    (GNU style, possibly "XXH128_"-prefixed, or BSD --tag style)."""
    out = subprocess.run(["xxhsum", "-H2", str(path)], check=True,
                         capture_output=True, text=True,
                         timeout=TIMEOUT).stdout
    line = out.splitlines()[0].strip()
    if " = " in line and line.startswith("XXH"):
        field = line.rsplit(" = ", 1)[1].strip()
    else:
        field = re.sub(r"^(XXH128|XXH3_128|XXH3)[_:]", "", line.split()[0])
    if not HEX32.match(field):
        raise RuntimeError("cannot parse xxhsum output: %r" % out)
    return field.lower()


def probe_kernels(res, tool, empty):
    """Return the xxh3 kernels the tool accepts here; exit 2 = not on this
    CPU (skipped once per kernel); anything else but 0 is a failure."""
    usable = []
    for k in XXH3_KERNELS:
        proc = run_tool(tool, "--digest", "xxh128", "--xxh3-kernel", k,
                        str(empty))
        if proc.returncode == 2:
            res.skip("xxh3 kernel %s not supported here (%s)"
                     % (k, proc.stderr.strip()))
        elif res.ok(proc.returncode == 0,
                    "probe --xxh3-kernel %s: %s" % (k, describe(proc))):
            usable.append(k)
    return usable


def check_xxh128(res, tool, inputs, tmp, kernels):
    have_xxhsum = shutil.which("xxhsum") is not None
    if not have_xxhsum:
        res.skip("xxhsum not installed: xxh128 outer-hash cross-check")
    leaves_file = Path(tmp) / "leaves"
    for bs, bs_arg in BLOCK_SIZES.items():
        for label, path in inputs:
            what = "xxh128/%d %s" % (bs, label)
            ref = blkhash_ref.blkhash(path, "xxh128", bs)
            if have_xxhsum:
                proc = subprocess.run(
                    [sys.executable, str(TOOLS / "blkhash_ref.py"),
                     "-d", "xxh128", "-b", str(bs),
                     "--leaves-file", str(leaves_file), str(path)],
                    capture_output=True, text=True, timeout=TIMEOUT)
                if res.ok(proc.returncode == 0,
                          "%s: blkhash_ref.py --leaves-file: %s"
                          % (what, describe(proc))):
                    size = path.stat().st_size
                    nleaves = -(-size // bs)
                    res.ok(leaves_file.stat().st_size == 16 * nleaves + 8,
                           "%s: leaves file has %d bytes, expected %d"
                           % (what, leaves_file.stat().st_size,
                              16 * nleaves + 8))
                    check_root(res, tool,
                               ["--digest", "xxh128", "--block-size", bs_arg,
                                str(path)],
                               xxhsum_h2(leaves_file),
                               what + " vs xxhsum -H2 of leaves file")
            for k in kernels:
                for mode in ("stream", "table"):
                    check_root(res, tool,
                               ["--digest", "xxh128", "--block-size", bs_arg,
                                "--mode", mode, "--xxh3-kernel", k,
                                str(path)],
                               ref, "%s --xxh3-kernel %s --mode %s"
                               % (what, k, mode))


def check_digests(res, tool, inputs):
    for digest in WANTED_DIGESTS:
        if digest not in blkhash_ref.DIGESTS:
            res.skip("digest %s: not available in the reference" % digest)
            continue
        for bs, bs_arg in BLOCK_SIZES.items():
            for label, path in inputs:
                ref = blkhash_ref.blkhash(path, digest, bs)
                base = ["--digest", digest, "--block-size", bs_arg]
                what = "%s/%d %s" % (digest, bs, label)
                check_root(res, tool, base + ["--mode", "stream", str(path)],
                           ref, what + " --mode stream")
                for seed in TABLE_SEEDS:
                    check_root(res, tool,
                               base + ["--mode", "table", "--seed",
                                       str(seed), str(path)],
                               ref, "%s --mode table --seed %d"
                               % (what, seed))


def check_unknown(res, tool, path):
    for name in UNKNOWN_DIGESTS:
        proc = run_tool(tool, "--digest", name, str(path))
        res.ok(proc.returncode == 2 and name in proc.stderr
               and proc.stdout == "",
               "unknown digest %r: want exit 2, empty stdout and the name "
               "on stderr; got %s" % (name, describe(proc)))


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Check blkhash-tool against the pure-Python reference.")
    p.add_argument("--tool", required=True, help="path to blkhash-tool")
    a = p.parse_args(argv)
    tool = str(Path(a.tool).resolve())
    res = Results()
    with tempfile.TemporaryDirectory(prefix="check-engine-") as tmp:
        inputs = make_inputs(tmp)
        empty = dict(inputs)["empty"]
        try:
            check_unknown(res, tool, dict(inputs)["4097"])
            check_digests(res, tool, inputs)
            if "xxh128" in blkhash_ref.DIGESTS:
                kernels = probe_kernels(res, tool, empty)
                check_xxh128(res, tool, inputs, tmp, kernels)
            else:
                res.skip("xxh128 checks: reference lacks xxh128")
        except (OSError, subprocess.SubprocessError) as e:
            res.ok(False, "cannot run checks: %s" % e)
    print(res.summary())
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
