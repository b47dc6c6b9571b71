"""A Slack-like incoming webhook on loopback that keeps every message it is sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxb-do-not-leak"


class Receiver:
    """Listens on 127.0.0.1 at `url` (the `path` given, e.g. a secret-looking Slack path) and
    keeps every JSON body (`posts`), its raw bytes and the path it was posted to."""

    def __init__(self, path: str = SECRET_PATH):
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.raw.append(body)
                    receiver.paths.append(self.path)
                    receiver.posts.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict]:
        """Every message so far."""
        with self._lock:
            return list(self.posts)

    def take(self) -> list[dict]:
        """Messages received since the last call."""
        with self._lock:
            taken, self.posts[:] = list(self.posts), []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def webhook_receiver(path: str = SECRET_PATH) -> Iterator[Receiver]:
    receiver = Receiver(path)
    try:
        yield receiver
    finally:
        receiver.close()
