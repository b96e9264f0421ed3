"""A static file server with HTTP Range support on 127.0.0.1, for the remote-store tests."""

from __future__ import annotations

import re
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    """GET/HEAD of files, honouring a single `Range: bytes=a-b`, `a-` or the suffix form `-n` (the last
    n bytes, how zarr reads a shard's index) with 206, like object stores and CDNs do."""

    log: list[str] = []  # request lines, for the tests to count requests
    ranged: list[str] = []  # the Range headers received

    def log_message(self, *args) -> None:  # keep the test output clean; record the request line instead
        RangeHandler.log.append(self.requestline)
        if self.headers.get("Range"):
            RangeHandler.ranged.append(self.headers["Range"])

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        match = RANGE.match(self.headers.get("Range", ""))
        if match:
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            else:  # suffix range: the last n bytes
                start, end = max(len(data) - int(match.group(2) or 0), 0), len(data) - 1
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        from io import BytesIO

        return BytesIO(body)


class PlainHandler(SimpleHTTPRequestHandler):
    """Python's own static server, which ignores Range (answers 200 with the whole file)."""

    def log_message(self, *args) -> None:
        RangeHandler.log.append(self.requestline)


class FlakyHandler(RangeHandler):
    """A Range-capable server that misbehaves on schedule: `faults` maps a path suffix to the faults the
    next requests for it meet, one each ("500": an error reply, "drop": the connection closed with no
    reply, "stall": no reply for `stall_s`, then the file), and `swaps` maps a suffix to
    (n, target, new bytes): just before the n-th request for that suffix is served, the file `target`
    (a path under the served folder) is replaced on disk, as a publisher replacing a file would."""

    faults: dict[str, list[str]] = {}
    swaps: dict[str, tuple[int, str, bytes]] = {}
    seen: dict[str, int] = {}
    stall_s = 2.0

    def send_head(self):
        for suffix, (when, target, data) in list(FlakyHandler.swaps.items()):
            if self.path.endswith(suffix):
                FlakyHandler.seen[suffix] = FlakyHandler.seen.get(suffix, 0) + 1
                if FlakyHandler.seen[suffix] == when:
                    Path(self.translate_path("/" + target)).write_bytes(data)
        for suffix, planned in FlakyHandler.faults.items():
            if self.path.endswith(suffix) and planned:
                fault = planned.pop(0)
                if fault == "500":
                    self.send_error(500, "injected failure")
                    return None
                if fault == "drop":
                    self.close_connection = True
                    return None
                if fault == "stall":
                    time.sleep(FlakyHandler.stall_s)
        return super().send_head()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that gave up
            super().handle_error(request, client_address)


class StaticServer:
    def __init__(self, root: Path, handler=RangeHandler):
        self.server = QuietServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StaticServer:
        RangeHandler.log.clear()
        RangeHandler.ranged.clear()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
