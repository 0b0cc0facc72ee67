"""Every shell example in README.md and the man pages
(man/nbdkit-blkhash-filter.pod, man/blkhash-map.pod) runs, and does what
the text says.

What is an example:
- README.md: a fenced code block marked sh (or bash, shell) with a line
  whose first word is one of COMMANDS (nbdkit, qemu-img, nbdcopy, ...) or
  starts with one of PREFIXES (scripts/).  Other sh blocks (meson, bench/,
  the fuzzer) are listed as "not examples".
- The man pages: a verbatim paragraph whose first line starts with one of
  those words.  ("nbdkit: ..." is output, not a command.)

Markers in the documents, written just before the example (README: an
HTML comment line `<!-- docs-test: ... -->`; POD: a paragraph
`=for comment docs-test: ...`):
  skip REASON        not run; listed with the reason
  hex=wrong          HEX is filled with a wrong checksum (default: the
                     right one), so the example shows a mismatch
  exit=N | exit=fail how the example's last command exits (default 0);
                     every other command must exit 0
  verdict=V          the verdict= of every report line (default: mismatch
                     with hex=wrong, match with blkhash-expect or
                     blkhash-verify, else computed)
  reference=disk|qcow2|FILE:OFFSET:LENGTH|none
                     what the report's checksum must equal: the blkhash of
                     the demo disk's content (disk.img), of the bytes of
                     the qcow2 file, of a byte range of one of the files,
                     or nothing checked (default: qcow2 if the plugin
                     serves a .qcow2 file, else disk)
  reports=0          the example prints no report line (default: at least
                     one when it runs the filter)
  output             (before a README fenced block or a POD verbatim
                     paragraph that is not an example) the output shown
                     there is what the example before it prints
README sh blocks also show output as comment lines naming the program:
`# nbdkit: blkhash: ...`.  In shown output `...` stands for any text, HEX
for lowercase hex digits, N, BYTES and OFFSET for a number, NAME for an
export name, <word> for one word; each shown line must match a whole line
of what the example printed (stdout and stderr together).

How examples run: each in a fresh directory holding copies of the files it
names: src.qcow2 and disk.img (tests/tools/demo_image.py, the demo's
image: the values the documents show are its values) and
distro-cloud.qcow2 (a copy of src.qcow2).  https://example.com/ is a
loopback HTTP server (range_http_server.py) serving distro-cloud.qcow2;
--filter=blkhash is the built filter.  The commands of the example run in
one bash with pipefail, each one's exit status recorded; the example has
90 s.

Checks: exit statuses; every report line has the documented shape, the
expected verdict, and (unless reference=none) the checksum computed by
tests/tools/blkhash_ref.py (Python hashlib/xxhash) from the file, never by
the filter; the shown output; and every complete sample report line
anywhere in the documents has the documented shape.  A marker with an
unknown key or value fails the test.  A wrong HEX is the right one with
every digit changed (0->1, ..., f->0).  At the end the test lists the
skipped examples with their reasons.

DOCS_TEST_ONLY=TEXT runs only the examples whose place ("README.md:12
(heading)") contains TEXT; DOCS_TEST_VERBOSE=1 prints every example's
script and output.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ENV, FILTER, check, finish, reference  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
TOOLS = os.environ.get("BLKHASH_TOOLS", os.path.join(TOP, "tests", "tools"))
DOCS = [os.path.join(TOP, "README.md"),
        os.path.join(TOP, "man", "nbdkit-blkhash-filter.pod"),
        os.path.join(TOP, "man", "blkhash-map.pod")]

COMMANDS = {"nbdkit", "nbdcopy", "nbdinfo", "nbdsh", "qemu-img", "qemu-nbd",
            "truncate", "blksum", "cat", "cmp", "jq", "kill", "sha256sum",
            "blkhash-map"}
PREFIXES = ("scripts/",)
# The files examples may name, made once and copied into each example's
# directory when it names them.
FILES = ("src.qcow2", "disk.img", "distro-cloud.qcow2")
EXAMPLE_TIMEOUT = 90
# DOCS_TEST_VERBOSE=1: print every example's script and output.
VERBOSE = os.environ.get("DOCS_TEST_VERBOSE") == "1"
# DOCS_TEST_ONLY=TEXT: run only the examples whose place (file:line
# (heading)) contains TEXT.
ONLY = os.environ.get("DOCS_TEST_ONLY", "")

# The report line, as the man page's "The log line" defines it.
QUOTED = r'"(?:[^"\\]|\\.)*(?:\.\.\.)?"'
REPORT_LINE = re.compile(
    r"^nbdkit: blkhash: (?:"
    # a blkhash: DIGEST/BLOCKSIZE HEX ... and the blkhash's fields
    r"(?P<digest>[a-z0-9-]+)/(?P<bs>[0-9]+[KM]?) "
    r"(?P<hex>[0-9a-f]+|incomplete) export=" + QUOTED +
    r" size=[0-9]+ hashed=[0-9]+ read=[0-9]+"
    r"(?P<unfolded> unfolded=[0-9]+)?"
    r"(?P<error> error=" + QUOTED + r")?"
    r"(?: expect=(?P<expect>verified|MISMATCH expected=[0-9a-f]+))?"
    r"(?: bad-blocks=" + QUOTED + r")?"
    r"(?: verify=(?P<verify>match|MISMATCH|incomplete)"
    r"(?: readback=[0-9a-f]+| verify-error=" + QUOTED + r") verify-read=[0-9]+)?"
    # or blkhash-digest=none: ALGORITHM HEX, the whole-image digest alone
    r"|(?P<alone>[a-z0-9-]+) (?P<alone_hex>[0-9a-f]+|incomplete) export=" +
    QUOTED + r" size=[0-9]+(?= whole=)"
    r")"
    r"(?: whole=(?P<whole_alg>[a-z0-9-]+):(?P<whole>[0-9a-f]+|incomplete)"
    r" whole-read=[0-9]+(?: whole-error=" + QUOTED +
    r"| whole-expect=(?:verified|MISMATCH whole-expected=[0-9a-f]+))?)?"
    r" verdict=(?P<verdict>match|mismatch|incomplete|computed)$")
# What looks like a report line (to find the ones that do not parse).
REPORT_START = re.compile(
    r"^nbdkit: blkhash: [a-z0-9-]+(?:/[0-9]+[KM]?)? (?:[0-9a-f]+|incomplete) ")


# --- Reading the documents ---------------------------------------------------


class Example:
    def __init__(self, doc, line, heading, text, directive):
        self.doc = os.path.basename(doc)
        self.line = line
        self.heading = heading
        self.text = text
        self.directive = directive
        self.shown = []  # output lines the documents show for it

    def where(self):
        return "%s:%d (%s)" % (self.doc, self.line, self.heading)


def parse_directive(text):
    """`docs-test: ...` -> dict; skip keeps its reason."""
    text = " ".join(text.split())
    if not text.startswith("docs-test:"):
        return None
    body = text[len("docs-test:"):].strip()
    if body.startswith("skip"):
        return {"skip": body[len("skip"):].strip() or "no reason given"}
    d = {}
    for token in body.split():
        key, _, value = token.partition("=")
        d[key] = value
    return d


# The markers' keys, and the values they take (None: any).
DIRECTIVE_VALUES = {"hex": {"wrong"}, "exit": None, "verdict": {
    "match", "mismatch", "incomplete", "computed"}, "reference": None,
    "reports": {"0"}, "output": {""}}


def directive_problems(d):
    """What is wrong with a parsed marker (typos must not pass silently)."""
    problems = []
    for key, value in d.items():
        if key == "skip":
            continue
        if key not in DIRECTIVE_VALUES:
            problems.append("unknown docs-test key %r" % key)
        elif DIRECTIVE_VALUES[key] is not None and \
                value not in DIRECTIVE_VALUES[key]:
            problems.append("docs-test %s=%r: not one of %s" %
                            (key, value, sorted(DIRECTIVE_VALUES[key])))
    if "exit" in d and not re.fullmatch(r"[0-9]+|fail", d["exit"]):
        problems.append("docs-test exit=%r: not a number or fail" % d["exit"])
    return problems


def first_word(line):
    words = line.split()
    return words[0] if words else ""


def is_command(line):
    w = first_word(line)
    return w in COMMANDS or w.startswith(PREFIXES)


def output_comment(line):
    """A README comment line showing output: '# nbdkit: ...' -> the text."""
    m = re.match(r"^#\s+((?:nbdkit|nbdinfo|nbdcopy|qemu-img|qemu-nbd|blkhash):"
                 r".*)$", line.strip())
    return m.group(1) if m else None


def attach_output(example, body, where, problems):
    """Output shown after a docs-test output marker belongs to the example
    before it."""
    if example is None:
        problems.append("%s: output with no example before it" %
                        os.path.basename(where))
    else:
        example.shown += [b for b in body if b.strip()]


def read_readme(path, problems):
    examples, others = [], []
    lines = open(path).read().split("\n")
    heading, pending, last = "", None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        m = re.match(r"^<!--\s*(docs-test:.*?)\s*-->\s*$", line)
        if m:
            pending = (parse_directive(m.group(1)), i + 1)
            i += 1
            continue
        fence = re.match(r"^```(\w*)\s*$", line)
        if not fence:
            if line.strip() and pending:
                problems.append("%s:%d: docs-test marker not followed by a "
                                "code block" % (os.path.basename(path),
                                                pending[1]))
                pending = None
            i += 1
            continue
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[start:j]
        directive = pending[0] if pending else {}
        pending = None
        lang = fence.group(1)
        if directive.get("output") is not None:
            attach_output(last, body, "%s:%d" % (path, start), problems)
        elif lang in ("sh", "bash", "shell"):
            if any(is_command(b) for b in body if not b.startswith("#")):
                ex = Example(path, start, heading, "\n".join(body), directive)
                ex.shown = [o for o in map(output_comment, body) if o]
                examples.append(ex)
                last = ex
            else:
                others.append((path, start, first_word(body[0]) if body
                               else ""))
        i = j + 1
    return examples, others


def read_pod(path, problems):
    examples = []
    text = open(path).read()
    paragraphs = []  # (line number, text)
    line_no = 1
    for block in re.split(r"(\n[ \t]*\n)", text):
        if block.strip() and not re.fullmatch(r"\n[ \t]*\n", block):
            paragraphs.append((line_no, block))
        line_no += block.count("\n")
    heading, pending, last = "", None, None
    for n, para in paragraphs:
        if para.startswith("=head"):
            heading = para.split(None, 1)[1].strip() if " " in para else ""
        if para.startswith("=for comment"):
            d = parse_directive(para[len("=for comment"):])
            if d is not None:
                pending = (d, n)
            continue
        if not para[0].isspace():
            if pending:
                problems.append("%s:%d: docs-test marker not followed by a "
                                "verbatim paragraph" %
                                (os.path.basename(path), pending[1]))
                pending = None
            continue
        lines = para.split("\n")
        indent = min(len(l) - len(l.lstrip()) for l in lines if l.strip())
        body = [l[indent:] for l in lines]
        directive = pending[0] if pending else {}
        pending = None
        if directive.get("output") is not None:
            attach_output(last, body, "%s:%d" % (path, n), problems)
        elif is_command(body[0]):
            ex = Example(path, n, heading, "\n".join(body), directive)
            examples.append(ex)
            last = ex
    return examples


def sample_report_lines():
    """Every complete report line the documents show (no placeholder)."""
    samples = []
    for path in DOCS:
        for n, line in enumerate(open(path), 1):
            s = line.strip()
            s = re.sub(r"^#\s+", "", s)
            if s.startswith("blkhash: "):
                s = "nbdkit: " + s
            if not REPORT_START.match(s) or "..." in s or " pending " in s:
                continue
            if re.search(r"\b(HEX|BYTES|NAME|ACTUAL|EXPECTED|MESSAGE)\b", s):
                continue
            samples.append(("%s:%d" % (os.path.basename(path), n), s))
    return samples


# --- Running an example ----------------------------------------------------------


def split_commands(text):
    """The example's commands: lines joined while a quote is open or a line
    ends with a backslash, &&, || or |.  Comment lines outside commands
    are dropped."""
    commands, current = [], []
    quote = None
    for line in text.split("\n"):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        i = 0
        while i < len(line):
            c = line[i]
            if quote:
                if c == quote:
                    quote = None
                elif c == "\\" and quote == '"':
                    i += 1
            elif c in "'\"":
                quote = c
            elif c == "\\":
                i += 1
            elif c == "#" and (i == 0 or line[i - 1].isspace()):
                break
            i += 1
        stripped = re.sub(r"\s+#.*$", "", line).rstrip() if not quote else ""
        if quote or stripped.endswith(("\\", "&&", "||", "|")):
            continue
        commands.append("\n".join(current))
        current = []
    if current:
        commands.append("\n".join(current))
    return commands


def parse_block_size(text):
    """"64K" -> 65536."""
    m = re.fullmatch(r"([0-9]+)([KM]?)", text)
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1 << 20}[m.group(2)]


def label_of(text):
    """(digest, block size in bytes) the example's filter uses."""
    m = re.search(r"blkhash-digest=(\S+)", text)
    digest = m.group(1).lower() if m else "sha256"
    m = re.search(r"blkhash-block-size=([0-9]+[KM]?)", text)
    return digest, parse_block_size(m.group(1)) if m else 65536


class Runner:
    def __init__(self, template, port):
        self.template = template
        self.port = port
        self.references = {}

    def reference(self, kind, digest, block_size):
        """blkhash_ref's checksum of `kind`: disk (disk.img), qcow2 (the
        bytes of src.qcow2) or FILE:OFFSET:LENGTH (a range of a file)."""
        key = (kind, digest, block_size)
        if key not in self.references:
            name, _, span = {"disk": "disk.img", "qcow2": "src.qcow2"}.get(
                kind, kind).partition(":")
            path = os.path.join(self.template, name)
            if span:
                offset, length = (int(x) for x in span.split(":"))
                with open(path, "rb") as f:
                    f.seek(offset)
                    source = f.read(length)
            else:
                source = path
            self.references[key] = reference(source, digest, block_size)
        return self.references[key]

    def whole_reference(self, kind, algorithm):
        """hashlib's ordinary digest of `kind` (as reference())."""
        key = ("whole", kind, algorithm)
        if key not in self.references:
            name, _, span = {"disk": "disk.img", "qcow2": "src.qcow2"}.get(
                kind, kind).partition(":")
            with open(os.path.join(self.template, name), "rb") as f:
                data = f.read()
            if span:
                offset, length = (int(x) for x in span.split(":"))
                data = data[offset:offset + length]
            self.references[key] = hashlib.new(algorithm, data).hexdigest()
        return self.references[key]

    def kind(self, ex):
        kind = ex.directive.get("reference")
        if kind:
            return kind
        served = re.search(r"\b(?:file|curl)\s+(\S+)", ex.text)
        return "qcow2" if served and served.group(1).endswith(".qcow2") \
            else "disk"

    def expected_verdict(self, ex):
        if ex.directive.get("verdict"):
            return ex.directive["verdict"]
        if ex.directive.get("hex") == "wrong":
            return "mismatch"
        if "blkhash-expect=" in ex.text or "blkhash-verify=true" in ex.text:
            return "match"
        return "computed"

    def hex_value(self, ex):
        kind = self.kind(ex)
        whole = re.search(r"blkhash-expect=([a-z0-9-]+):HEX\b", ex.text)
        if whole:  # the ordinary digest of the whole image
            right = self.whole_reference("disk" if kind == "none" else kind,
                                         whole.group(1))
        else:
            right = self.reference("disk" if kind == "none" else kind,
                                   *label_of(ex.text))
        if ex.directive.get("hex") == "wrong":
            # Every digit changed: 0->1, ..., e->f, f->0.
            return right.translate(str.maketrans("0123456789abcdef",
                                                 "123456789abcdef0"))
        return right

    def script(self, ex, rc_file):
        lines = ["set -o pipefail",
                 "__docs_rc() { echo \"$1\" >>'%s'; }" % rc_file,
                 "trap 'kill $(jobs -p) 2>/dev/null' EXIT"]
        for command in split_commands(ex.text):
            c = re.sub(r"--filter=blkhash(?=\s|$)", "--filter=" + FILTER,
                       command)
            c = c.replace("https://example.com/",
                          "http://127.0.0.1:%d/" % self.port)
            if re.search(r"\bHEX\b", c):
                c = re.sub(r"\bHEX\b", self.hex_value(ex), c)
            lines += [c, "__docs_rc $?"]
        return "\n".join(lines) + "\n"

    def run(self, ex):
        """Runs `ex`: (exit statuses, output, number of commands)."""
        work = tempfile.mkdtemp(prefix="docs-example-")
        try:
            for name in FILES:
                if name in ex.text:
                    subprocess.run(["cp", "--sparse=always",
                                    os.path.join(self.template, name), work],
                                   check=True)
            rc_file = os.path.join(work, "..", os.path.basename(work) + ".rc")
            script = self.script(ex, rc_file)
            proc = subprocess.Popen(["bash", "-c", script], cwd=work,
                                    env=ENV, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=EXAMPLE_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
                output += "\n(killed after %d s)" % EXAMPLE_TIMEOUT
            rcs = []
            if os.path.exists(rc_file):
                rcs = [int(x) for x in open(rc_file).read().split()]
                os.unlink(rc_file)
            return rcs, output, len(split_commands(ex.text))
        finally:
            shutil.rmtree(work, ignore_errors=True)


def shown_pattern(line):
    """A shown output line as a regex for a whole output line."""
    tokens = re.split(r"(\.\.\.|\bHEX\b|\bN\b|\bBYTES\b|\bOFFSET\b|\bNAME\b"
                      r"|<\w+>)", line.strip())
    out = ""
    for t in tokens:
        if t == "...":
            out += ".*?"
        elif t == "HEX":
            out += "[0-9a-f]+"
        elif t in ("N", "BYTES", "OFFSET"):
            out += "[0-9]+"
        elif t == "NAME":
            out += '[^"]*'
        elif re.fullmatch(r"<\w+>", t or ""):
            out += r"\S+"
        else:
            out += re.escape(t)
    return re.compile(out)


def check_example(runner, ex):
    what = ex.where()
    t0 = time.monotonic()
    rcs, output, ncommands = runner.run(ex)
    seconds = time.monotonic() - t0
    exit_wanted = ex.directive.get("exit", "0")
    ok = check(len(rcs) == ncommands,
               "%s: ran %d of %d commands" % (what, len(rcs), ncommands))
    if ok:
        ok &= check(all(rc == 0 for rc in rcs[:-1]),
                    "%s: a command before the last failed: %s" % (what, rcs))
        last = rcs[-1]
        if exit_wanted == "fail":
            ok &= check(last != 0, "%s: the last command exited 0, the text "
                        "says it fails" % what)
        else:
            ok &= check(last == int(exit_wanted),
                        "%s: the last command exited %d, not %s" %
                        (what, last, exit_wanted))

    reports = [l for l in output.split("\n") if REPORT_START.match(l)]
    verdict = runner.expected_verdict(ex)
    kind = runner.kind(ex)
    for r in reports:
        m = REPORT_LINE.match(r)
        ok &= check(m is not None, "%s: report line not in the documented "
                    "shape" % what, r)
        if not m:
            continue
        ok &= check(m.group("verdict") == verdict,
                    "%s: verdict=%s, the text implies %s" %
                    (what, m.group("verdict"), verdict), r)
        if (kind != "none" and m.group("whole") not in (None, "incomplete")):
            want = runner.whole_reference(kind, m.group("whole_alg"))
            ok &= check(m.group("whole") == want,
                        "%s: whole= is not hashlib's %s" % (what, want), r)
        if m.group("alone"):
            ok &= check(m.group("alone_hex") == m.group("whole")
                        and m.group("alone") == m.group("whole_alg"),
                        "%s: the line does not lead with whole=" % what, r)
            continue
        if kind != "none" and m.group("hex") != "incomplete":
            want = runner.reference(kind, m.group("digest"),
                                    parse_block_size(m.group("bs")))
            ok &= check(m.group("hex") == want,
                        "%s: checksum is not the reference %s" % (what, want),
                        r)
    runs_filter = "--filter=blkhash" in ex.text
    if ex.directive.get("reports") == "0":
        ok &= check(not reports, "%s: printed report lines" % what)
    elif runs_filter:
        ok &= check(len(reports) > 0, "%s: printed no report line" % what)
    out_lines = [l.strip() for l in output.split("\n")]
    for shown in ex.shown:
        pattern = shown_pattern(shown)
        ok &= check(any(pattern.fullmatch(l) for l in out_lines),
                    "%s: the output the text shows is not printed" % what,
                    shown)
    print("%s %s: %.1f s, exit %s, %d report line(s)" %
          ("ok  " if ok else "FAIL", what, seconds, rcs, len(reports)),
          flush=True)
    if not ok or VERBOSE:
        print("---- its script:\n%s---- its output:\n%s----" %
              (runner.script(ex, "/dev/null"), output), flush=True)


def prepare(template):
    subprocess.run([sys.executable, os.path.join(TOOLS, "demo_image.py"),
                    template], check=True, env=ENV, stdout=subprocess.DEVNULL)
    shutil.copyfile(os.path.join(template, "src.qcow2"),
                    os.path.join(template, "distro-cloud.qcow2"))
    www = os.path.join(template, "www")
    os.mkdir(www)
    os.link(os.path.join(template, "distro-cloud.qcow2"),
            os.path.join(www, "distro-cloud.qcow2"))
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "range_http_server.py"), www],
        stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    return server, port


def main():
    t0 = time.monotonic()
    problems = []
    readme_examples, others = read_readme(DOCS[0], problems)
    pod_examples = [ex for doc in DOCS[1:] for ex in read_pod(doc, problems)]
    examples = readme_examples + pod_examples
    for ex in examples:
        for p in directive_problems(ex.directive):
            problems.append("%s: %s" % (ex.where(), p))
    for p in problems:
        check(False, p)
    # A guard against an extraction that silently finds nothing.
    check(len(readme_examples) >= 5 and len(pod_examples) >= 10,
          "too few examples found: %d in README.md, %d in the man pages" %
          (len(readme_examples), len(pod_examples)))

    for where, line in sample_report_lines():
        check(REPORT_LINE.match(line) is not None,
              "%s: sample report line not in the documented shape" % where,
              line)

    template = tempfile.mkdtemp(prefix="docs-template-")
    server = None
    skipped = []
    try:
        server, port = prepare(template)
        runner = Runner(template, port)
        for ex in examples:
            if ONLY not in ex.where():
                continue
            if "skip" in ex.directive:
                skipped.append((ex, ex.directive["skip"]))
                continue
            check_example(runner, ex)
    finally:
        if server:
            server.kill()
            server.wait()
        shutil.rmtree(template, ignore_errors=True)

    print("\n%d examples found, %d run, %d skipped:" %
          (len(examples), len(examples) - len(skipped), len(skipped)))
    for ex, reason in skipped:
        print("  skipped %s: %s" % (ex.where(), reason))
    if others:
        print("sh blocks that are not examples (no client command):")
        for path, line, word in others:
            print("  %s:%d: %s ..." % (os.path.basename(path), line, word))
    print("%.0f s in all" % (time.monotonic() - t0))
    finish()


if __name__ == "__main__":
    main()
