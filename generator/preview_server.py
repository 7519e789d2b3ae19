"""`decks preview --serve`: serve the preview on 127.0.0.1, rebuild changed cards, reload open pages.

The content folder is watched with watchfiles; each batch of changes goes
through `PreviewSite.update`, which previews again only the cards whose text
changed and rewrites only the files whose bytes changed. Every HTML page is
served with a small script that asks for the page's fingerprint a few times a
second and reloads when it differs, so only pages whose card changed reload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import watchfiles

from generator.diagnostics import summarize
from generator.preview import PreviewError, PreviewSite, SiteReport

HOST = "127.0.0.1"
DIGEST_PATH = "/__digest"
POLL_MS = 250
GONE = "gone"
WATCH_STEP_MS = 50  # yield a batch of changes once the files have been quiet this long

# Asks for the page's fingerprint until it changes, then reloads (keeping the scroll position).
LIVE_RELOAD = """<script>
(() => {
  const digest = %s;
  async function poll() {
    try {
      const response = await fetch('%s?page=' + encodeURIComponent(location.pathname), {cache: 'no-store'});
      const current = await response.text();
      if (current !== digest) {
        if (current === '%s') location.href = '/';
        else location.reload();
        return;
      }
    } catch (error) { /* the server is restarting: keep asking */ }
    setTimeout(poll, %d);
  }
  setTimeout(poll, %d);
})();
</script>
"""

Echo = Callable[[str], None]
log = logging.getLogger(__name__)


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class PreviewRequestHandler(SimpleHTTPRequestHandler):
    """Static files from the site folder; HTML gets the live-reload script; `/__digest` fingerprints a page."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == DIGEST_PATH:
            page = parse_qs(url.query).get("page", ["/"])[0]
            data = self._page_bytes(page)
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", (fingerprint(data) if data else GONE).encode())
            return
        data = self._page_bytes(url.path)
        if data is None:
            super().do_GET()
            return
        script = LIVE_RELOAD % (json.dumps(fingerprint(data)), DIGEST_PATH, GONE, POLL_MS, POLL_MS)
        body = data.replace(b"</body>", script.encode() + b"</body>", 1)
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", body)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a reload must fetch the rebuilt page
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the terminal shows rebuilds."""

    def _page_bytes(self, url_path: str) -> bytes | None:
        """The HTML file that `url_path` names (a folder means its index.html), or None."""
        path = Path(self.translate_path(url_path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_server(site_dir: Path, port: int) -> ThreadingHTTPServer:
    """Serve `site_dir` on 127.0.0.1:`port` (0: any free port) from a background thread."""
    server = ThreadingHTTPServer((HOST, port), partial(PreviewRequestHandler, directory=str(site_dir)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="preview-server", daemon=True).start()
    return server


def serve(site: PreviewSite, port: int, echo: Echo, stop: threading.Event | None = None) -> None:
    """Serve the site and keep it current until interrupted (or `stop` is set)."""
    if not site.content_dir.is_dir():
        raise PreviewError(f"content folder {site.content_dir} not found")
    try:
        server = start_server(site.out_dir, port)  # first, so that a busy port is reported at once
    except OSError as problem:
        raise PreviewError(f"cannot serve on {HOST}:{port}: {problem.strerror or problem}") from problem
    try:
        started = time.perf_counter()
        report = site.build()
        echo(f"previewed {report.cards} cards in {time.perf_counter() - started:.1f} s ({report.summary()})")
        echo(f"serving http://{HOST}:{server.server_port}/ (Ctrl+C to stop); watching {site.content_dir}")
        for changes in watchfiles.watch(site.content_dir, step=WATCH_STEP_MS, stop_event=stop):
            started = time.perf_counter()
            try:
                report = site.update(Path(path) for _, path in changes)
            except Exception:  # a bug must not end the session: say so, keep serving the last good pages
                log.exception("rebuilding the preview failed")
                continue
            echo(_describe(site, report, time.perf_counter() - started))
    finally:
        server.shutdown()
        server.server_close()


def _describe(site: PreviewSite, report: SiteReport, seconds: float) -> str:
    lines: list[str] = []
    for path in report.rebuilt:
        preview = site.preview_for(path)
        lines.extend(d.format() for d in (preview.diagnostics if preview else ()))
    names = ", ".join(str(p.name) for p in report.rebuilt) or "no card"
    pages = sum(name.endswith(".html") for name in report.written)
    lines.append(
        f"rebuilt {names} in {seconds * 1000:.0f} ms; {pages} page(s) changed; {summarize(report.diagnostics)}"
    )
    return "\n".join(lines)
