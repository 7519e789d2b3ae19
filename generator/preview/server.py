"""`decks preview --serve`: serve the preview on 127.0.0.1, rebuild changed cards, reload open pages.

The content folder is watched with watchfiles; each batch of changes goes
through `PreviewSite.update`, which previews again only the cards whose text
changed and rewrites only the files whose bytes changed. Every HTML page is
served with a small script that asks for the page's fingerprint a few times a
second and reloads when it differs, so only pages whose card changed reload.
Only the files the preview wrote are served, from memory, and only to
requests addressed to 127.0.0.1 or localhost on the server's port.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import mimetypes
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import watchfiles

from generator.diagnostics import summarize
from generator.preview.site import INDEX, PreviewError, PreviewSite, SiteReport, page_policy

HOST = "127.0.0.1"
DIGEST_PATH = "/__digest"
LIVE_PATH = "/__live.js"
POLL_MS = 250
GONE = "gone"
WATCH_STEP_MS = 50  # yield a batch of changes once the files have been quiet this long
MAX_TARGET = 2048  # a longer request target is not one of the site's
SHUTDOWN_POLL_SECONDS = 0.05  # how often the serving thread looks for a shutdown request

# Asks for the page's fingerprint until it changes, then reloads (keeping the scroll position).
# A file of its own, not inline: the pages' policy allows no inline script.
LIVE_RELOAD = (
    """(() => {
  const digest = document.currentScript.dataset.digest;
  async function poll() {
    try {
      const response = await fetch('DIGEST_PATH?page=' + encodeURIComponent(location.pathname), {cache: 'no-store'});
      const current = await response.text();
      if (current !== digest) {
        if (current === 'GONE') location.href = '/';
        else location.reload();
        return;
      }
    } catch (error) { /* the server is restarting: keep asking */ }
    setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);
})();
""".replace("DIGEST_PATH", DIGEST_PATH)
    .replace("GONE", GONE)
    .replace("POLL_MS", str(POLL_MS))
)

Echo = Callable[[str], None]
log = logging.getLogger(__name__)


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def site_name(url_path: str) -> str | None:
    """The site file a URL path names ('/' and folders mean their index.html), or None if it cannot be one."""
    path = unquote(url_path, errors="strict")
    if not path.startswith("/") or "\\" in path or "\0" in path:
        return None
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        return None
    if not parts or path.endswith("/"):
        parts.append(INDEX)
    return str(PurePosixPath(*parts))


class PreviewRequestHandler(BaseHTTPRequestHandler):
    """GET and HEAD of the site's own files, from memory; `/__digest` fingerprints a page.

    Only files the preview wrote are served (`PreviewSite.file`), so nothing
    else in the folder, and nothing a symlink points at, is ever read. Only
    requests for this server by name (`Host: 127.0.0.1:PORT` or
    `localhost:PORT`) are answered, so a web page that rebinds its own host
    name to 127.0.0.1 cannot read the preview.
    """

    site: PreviewSite
    server_version = "decks-preview"
    sys_version = ""

    # Answer a garbled request line with a status line, as HTTP/1.0, not as a bare HTTP/0.9 body.
    default_request_version = "HTTP/1.0"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers an unknown HTTP version or method with a 5xx: a bad request is the client's.
        super().send_error(HTTPStatus.BAD_REQUEST if code >= 500 else code, message, explain)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ("GET", "HEAD"):
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)
            return False
        port = self.server.server_port  # type: ignore[attr-defined]  # an HTTPServer, which has it
        host = self.headers.get_all("Host") or []
        if len(host) != 1:
            self.send_error(HTTPStatus.BAD_REQUEST, "one Host header, please")
            return False
        if host[0].strip().lower() not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            self.send_error(HTTPStatus.MISDIRECTED_REQUEST, "this server answers only for 127.0.0.1 and localhost")
            return False
        if len(self.path) > MAX_TARGET or not self.path.startswith("/"):
            self.send_error(HTTPStatus.BAD_REQUEST)
            return False
        return True

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        try:
            url = urlsplit(self.path)
            name = site_name(url.path)
        except ValueError:  # a malformed target or percent-escape (UnicodeDecodeError is one)
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        if url.path == DIGEST_PATH:
            try:
                page = site_name(parse_qs(url.query, errors="strict").get("page", ["/"])[0])
            except ValueError:
                page = None
            data = self.site.file(page) if page else None
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", (fingerprint(data) if data else GONE).encode(), head)
            return
        if url.path == LIVE_PATH:
            self._send(HTTPStatus.OK, "text/javascript; charset=utf-8", LIVE_RELOAD.encode(), head)
            return
        data = self.site.file(name) if name else None
        if data is None or name is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        if name.endswith(".html"):
            script = f'<script src="{LIVE_PATH}" data-digest="{fingerprint(data)}"></script>'
            body = data.replace(b"</body>", script.encode() + b"</body>", 1)
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", body, head)
            return
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        self._send(HTTPStatus.OK, content_type, data, head)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a reload must fetch the rebuilt page
        # The pages' own policy, and (possible only in a header) no framing by other sites.
        self.send_header("Content-Security-Policy", page_policy() + "; frame-ancestors 'none'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the terminal shows rebuilds."""

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class PreviewServer(ThreadingHTTPServer):
    """A request that fails is one line in the log, never a traceback on the terminal."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        problem = sys.exc_info()[1]
        log.warning("preview server: a request failed (%s)", type(problem).__name__ if problem else "unknown")


def start_server(site: PreviewSite, port: int) -> ThreadingHTTPServer:
    """Serve `site` on 127.0.0.1:`port` (0: any free port) from a background thread."""
    handler = type("Handler", (PreviewRequestHandler,), {"site": site})
    server = PreviewServer((HOST, port), handler)
    # It checks for `shutdown` this often: stopping the preview (or a test's server) takes at most that long.
    serving = functools.partial(server.serve_forever, poll_interval=SHUTDOWN_POLL_SECONDS)
    threading.Thread(target=serving, name="preview-server", daemon=True).start()
    return server


def serve(site: PreviewSite, port: int, echo: Echo, stop: threading.Event | None = None) -> None:
    """Serve the site and keep it current until interrupted (or `stop` is set)."""
    if not site.content_dir.is_dir():
        raise PreviewError(f"content folder {site.content_dir} not found")
    try:
        server = start_server(site, port)  # first, so that a busy port is reported at once
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
            except PreviewError as problem:  # e.g. a symlink put into the folder: say so, keep serving
                echo(f"not rebuilt: {problem}")
                continue
            # A bug must not end the session: one line, keep serving the last good pages.
            except Exception as problem:  # noqa: BLE001
                log.error("rebuilding the preview failed: %s", type(problem).__name__)
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
