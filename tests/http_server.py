"""A static file server with HTTP Range support on 127.0.0.1, for the remote-store tests."""

from __future__ import annotations

import re
import threading
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
            body = data[start:end + 1]
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


class StaticServer:
    def __init__(self, root: Path):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
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
