"""Run the dashboard and look at it in a real headless Chromium (tests and the README screenshot).

Streamlit renders in the browser over a websocket, so `chromium --dump-dom` returns before any
data arrives. This drives Chromium through chromedriver's W3C WebDriver HTTP API (stdlib only):
open the page, wait until the freshness badge and a chart have rendered, read the text, take a
screenshot.

    uv run python -m dashboard.browser docs/dashboard.png [--page overview]

The command starts `streamlit run dashboard/app.py` on a free port with the environment's
settings (DASHBOARD_RDS_URL, or the embedded default after `dg launch --assets '*'`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "chromedriver")
CHART_JS = (
    "return document.querySelectorAll("
    '\'[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg\').length'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if not shutil.which(CHROMEDRIVER):
        return f"no chromedriver ({CHROMEDRIVER}) for {CHROMIUM}"
    return None


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def streamlit_app(env: dict | None = None, port: int | None = None) -> Iterator[str]:
    """`streamlit run dashboard/app.py` headless on a free port; yields its base URL."""
    port = port or free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="streamlit-"))
    log_path = log_dir / "streamlit.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "dashboard" / "app.py"),
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                "--client.toolbarMode",
                "viewer",
            ],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_http(f"{base}/_stcore/health", 60)
        except TimeoutError:
            raise RuntimeError("streamlit did not start: " + log_path.read_text()[-2000:]) from None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(log_dir, ignore_errors=True)


class Browser:
    """A headless Chromium session through chromedriver (W3C WebDriver over HTTP)."""

    def __init__(self, width: int = 1400, height: int = 1000):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            _wait_http(f"{self.base}/status", 20)
            args = [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--user-data-dir={self.profile}",
            ]
            caps = {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            }
            self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})[
                "sessionId"
            ]
        except BaseException:
            self.close()
            raise

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:  # noqa: ANN401 - JSON
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read()[:500]!r}") from None
        value = payload.get("value")
        return value if "sessionId" not in payload else payload

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def get(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    def js(self, script: str, *args: object) -> Any:  # noqa: ANN401 - what the script returns
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def text(self) -> str:
        return self.js("return document.body ? document.body.innerText : ''") or ""

    def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 45.0, what: str = "condition"
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not seen within {timeout:.0f} s: {self.text()[:800]}")
            time.sleep(0.25)

    def screenshot(self, path: str | Path) -> Path:
        png = base64.b64decode(self._call("GET", self._s("/screenshot")))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._call("DELETE", self._s(""))
        except Exception:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rendered(browser: Browser) -> tuple[str, int] | None:
    """(page text, number of rendered charts) once the badge and a chart are on screen."""
    text = browser.text()
    charts = browser.js(CHART_JS) or 0
    badge = "shows lake version" in text or "never synced" in text
    if badge and "View cached at" in text and charts > 0:  # the caption is written last
        return text, charts
    if "Cannot reach" in text or "not in the serving database" in text:
        return text, charts
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--page", default="overview", choices=["overview", "routes", "weather"])
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    reason = missing()
    if reason:
        sys.exit(reason)
    with streamlit_app() as base, Browser(args.width, args.height) as browser:
        browser.get(f"{base}/?page={args.page}")
        text, charts = browser.wait_for(lambda: rendered(browser), what="badge and chart")
        time.sleep(1.5)  # let the charts finish their transitions
        path = browser.screenshot(args.output)
    print(json.dumps({"screenshot": str(path), "charts": charts, "text": text[:300]}))


if __name__ == "__main__":
    main()
