#!/usr/bin/python3
"""A small threaded HTTP/1.1 file server with byte ranges, for tests.

    range_http_server.py DIRECTORY [--log FILE]

Listens on 127.0.0.1 only, on a port the kernel chooses, and prints that
port number on stdout (one line) once it accepts connections.  It serves
the regular files directly inside DIRECTORY (no listings, no
subdirectories) with GET and HEAD.  Every response has a Content-Length
and "Accept-Ranges: bytes", and connections are kept alive.  A single
range ("Range: bytes=A-B", "bytes=A-" or "bytes=-N") gets a 206 Partial
Content with a Content-Range header; an unsatisfiable one gets 416;
several ranges at once are answered with the whole file (200), which
RFC 9110 allows.  Files are opened afresh for each request, so changes
show at once.  With --log, each request is appended to FILE as
"METHOD PATH RANGE STATUS" (RANGE is "-" without a Range header).
Other methods get 501.  It runs until killed.
"""

import argparse
import http.server
import os
import re
import sys
import threading
import urllib.parse

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "range-http-server"
    directory = "."
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, format, *args):  # quiet: see --log
        pass

    def record(self, status):
        if self.log_file is None:
            return
        line = "%s %s %s %d\n" % (self.command, self.path,
                                  (self.headers.get("Range") or "-")
                                  .replace(" ", ""), status)
        with self.log_lock, open(self.log_file, "a") as f:
            f.write(line)

    def plain(self, status, text, extra=()):
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.record(status)

    def resolve(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        name = path.lstrip("/")
        if not name or "/" in name or name in (".", ".."):
            return None
        full = os.path.join(self.directory, name)
        return full if os.path.isfile(full) else None

    def serve(self):
        full = self.resolve()
        if full is None:
            self.plain(404, "not found")
            return
        with open(full, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start, end, status = 0, size - 1, 200
            header = self.headers.get("Range")
            if header is not None:
                m = RANGE_RE.match(header.replace(" ", ""))
                if m and (m.group(1) or m.group(2)):
                    if m.group(1):
                        start = int(m.group(1))
                        end = int(m.group(2)) if m.group(2) else size - 1
                        end = min(end, size - 1)
                    else:  # the last N bytes
                        start = max(0, size - int(m.group(2)))
                    if start >= size or start > end:
                        self.plain(416, "range not satisfiable",
                                   [("Content-Range", "bytes */%d" % size)])
                        return
                    status = 206
                elif "," not in header:
                    self.plain(416, "bad range",
                               [("Content-Range", "bytes */%d" % size)])
                    return
            length = max(0, end - start + 1)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range",
                                 "bytes %d-%d/%d" % (start, end, size))
            self.end_headers()
            if self.command != "HEAD":
                f.seek(start)
                left = length
                while left > 0:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        self.record(status)

    def do_GET(self):
        self.serve()

    def do_HEAD(self):
        self.serve()

    def not_implemented(self):
        # Drain any body so the connection stays usable.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.plain(501, "not implemented")

    do_PUT = do_POST = do_DELETE = do_OPTIONS = not_implemented


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--log")
    args = parser.parse_args()
    Handler.directory = os.path.abspath(args.directory)
    Handler.log_file = args.log
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
