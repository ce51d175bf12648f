"""A webhook receiver on loopback, for tests that watch what the controller posts."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab.localcluster import free_port


@dataclass
class Receiver:
    """A webhook receiver: answers each path with its configured status (200 by default),
    keeps the first delivery of each Idempotency-Key and counts the repeats."""

    port: int = field(default_factory=free_port)
    status: dict[str, int] = field(default_factory=dict)
    got: dict[str, dict[str, tuple[dict[str, str], bytes]]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.hits[self.path] = receiver.hits.get(self.path, 0) + 1
                    status = receiver.status.get(self.path, 200)
                    if status == 200:
                        seen = receiver.got.setdefault(self.path, {})
                        key = self.headers["Idempotency-Key"]
                        if key in seen:
                            receiver.duplicates += 1
                        else:
                            seen[key] = (dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.got.get(path, {}).values()]
