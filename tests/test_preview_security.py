"""The preview is isolated: nothing a card says runs, fetches or reaches outside the preview folder.

Each test closes one route that was open before: markup copied out of `\\text{…}`
by the MathML converter, attributes such as `href` and `style` in its output,
unsandboxed card frames, writing and deleting through symlinks, a server
that answered any `Host` and printed tracebacks.
"""

from __future__ import annotations

import html
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.apkg.notetype import note_types
from generator.cards.load import load_content
from generator.cli import main
from generator.preview.math import ERROR_CLASS, MATHML_ATTRIBUTES, MATHML_ELEMENTS, typeset_math
from generator.preview.server import start_server
from generator.preview.site import (
    MARKER_FILE,
    CardPreview,
    PreviewError,
    PreviewSite,
    card_page,
    frame_policy,
    index_entry,
    page_policy,
    preview_card,
)
from tests.browser import needs_chromium, run_chromium
from tests.conftest import WriteCard

TYPES = note_types()


def previews(content: Path) -> dict[str, CardPreview]:
    loaded, problems = load_content(content)
    assert loaded is not None, problems
    return {source.path.stem: preview_card(source, TYPES) for source in loaded.files}


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's HTML parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser.tags


# --- the MathML converter's output --------------------------------------------

# Tags the preview itself wraps a formula it cannot typeset in, and the test's own <p>.
FALLBACK_TAGS = {"p": set(), "span": {"class", "title"}, "div": {"class", "title"}, "code": {"class"}}


def assert_only_allowed_markup(side: str) -> None:
    for tag, attributes in tags_of(side):
        if tag in MATHML_ELEMENTS:
            allowed = set(MATHML_ATTRIBUTES) | ({"xmlns"} if tag == "math" else set())
        else:
            assert tag in FALLBACK_TAGS, (tag, side)
            allowed = FALLBACK_TAGS[tag]
        assert set(attributes) <= allowed, (tag, attributes, side)


@pytest.mark.parametrize(
    "tex",
    [
        r"\text{<img src=x onerror=alert(1)>}",
        r"\mbox{<b>bold</b>}",
        r"x + \text{</math><script>alert(1)</script>}",
        r"\textbf{<a href=x>y</a>}",
        r"\fbox{<iframe src=x>}",
    ],
)
def test_markup_inside_text_in_a_formula_stays_text(tex: str) -> None:
    """Before: latex2mathml's `<mtext>` held the card's markup unescaped, live on the page."""
    side, problems = typeset_math(rf"<p>\({html.escape(tex, quote=False)}\)</p>")
    assert problems == []
    assert_only_allowed_markup(side)
    assert "&lt;" in side and "<mtext" in side


@pytest.mark.parametrize(
    ("tex", "leak"),
    [
        (r"\href{javascript:alert(1)}{\text{show answer}}", "href="),
        (r"\style{background:url(http://example.com/p.png)}{x}", "style="),
        (r"\color{url(http://example.com/p.png)}{x}", "url("),
        (r"\colorbox{red;background:url(http://example.com/)}{x}", "url("),
        (r'\hspace{"onclick=alert(1)}', "width"),
    ],
)
def test_mathml_outside_the_allow_list_falls_back_to_escaped_tex(tex: str, leak: str) -> None:
    """Before: `href`, `style` and colour values reached the page as attributes."""
    side, problems = typeset_math(rf"<p>\({html.escape(tex, quote=False)}\)</p>")
    assert len(problems) == 1 and f'class="{ERROR_CLASS}"' in side
    assert "<math" not in side
    assert_only_allowed_markup(side)
    assert not any(leak in str(attributes) for _, attributes in tags_of(side))


HOSTILE_PIECES = [
    *"\\{}[]()^_&<>\"' ax1=:;/",
    r"\text{",
    r"\mbox{",
    r"\href{",
    r"\style{",
    r"\color{",
    r"\colorbox{",
    r"\hspace{",
    r"\frac",
    r"\sqrt",
    "<img src=x onerror=alert(1)>",
    "</math>",
    "javascript:",
    "url(",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(HOSTILE_PIECES), max_size=25).map("".join))
def test_any_formula_yields_only_allowed_markup(tex: str) -> None:
    for delimiters in (r"\(%s\)", r"\[%s\]"):
        side, _ = typeset_math("<p>" + delimiters % html.escape(tex, quote=False) + "</p>")
        assert_only_allowed_markup(side)


# --- card text on the pages -----------------------------------------------------

HOSTILE_TITLE = r"What does `train_step` do with $\text{<img src=x onerror=alert(1)>}$ and *layers*?"


def test_titles_are_escaped_and_shown_as_written(content: Path, write_card: WriteCard) -> None:
    write_card("alpha", "hostile", "id: alpha-hostile\ntags: [code]\nsource: [s#1]", f"# {HOSTILE_TITLE}\n\nIt runs.\n")
    preview = previews(content)["hostile"]
    assert preview.card is not None, preview.diagnostics
    for page in (card_page(preview, "Deck"), index_entry(preview)):
        assert "<img" not in page.split("srcdoc=")[0]  # outside the card frames, and escaped inside them
        assert "<code>train_step</code>" in page  # not 'trainstep'
        assert "<em>layers</em>" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


# --- frames and policies -----------------------------------------------------------


def test_card_frames_are_sandboxed_and_every_page_has_a_policy(
    content: Path, sample_cards: None, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    PreviewSite(content, site).build()
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 6
    frames = 0
    for page in pages:
        text = page.read_text()
        assert f'<meta http-equiv="Content-Security-Policy" content="{html.escape(page_policy())}">' in text
        for tag, attributes in tags_of(text):
            if tag == "script":
                assert attributes.get("src", "").endswith("assets/preview.js")  # no inline script
            if tag != "iframe":
                continue
            frames += 1
            assert attributes.get("sandbox") == ""  # no allow-scripts, no allow-same-origin, nothing
            document = attributes["srcdoc"] or ""
            assert f'content="{html.escape(frame_policy())}"' in document
            assert not any(t in ("script", "link", "base") for t, _ in tags_of(document))
    assert frames == 14
    for policy in (page_policy(), frame_policy()):
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert not re.search(r"https?:|\*", policy)  # nothing remote
    assert "script-src" not in frame_policy()  # default-src 'none': no script in a card frame


# --- the folder ------------------------------------------------------------------


def test_refuses_to_write_through_a_symlinked_folder(
    content: Path, sample_cards: None, tmp_path: Path, runner: CliRunner
) -> None:
    """Before: a `build` symlink committed to the repository sent the site anywhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "build").symlink_to(elsewhere)
    result = runner.invoke(main, ["preview", "--content", str(content), "--out", str(tmp_path / "build" / "preview")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: refusing to write through the symlink {tmp_path / 'build'}"]
    assert list(elsewhere.iterdir()) == []


def test_refuses_a_symlink_planted_in_an_earlier_preview(content: Path, sample_cards: None, tmp_path: Path) -> None:
    """Before: a `media` or `cards/<topic>` symlink made the build delete and write outside the folder."""
    site = tmp_path / "site"
    PreviewSite(content, site).build()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.html").write_text("keep me")
    (victim / "dense.html").write_text("keep me too")
    for planted in (site / "media", site / "cards" / "alpha"):
        if planted.is_dir():
            for path in planted.iterdir():
                path.unlink()
            planted.rmdir()
        planted.symlink_to(victim)
        with pytest.raises(PreviewError, match=f"^refusing to write through the symlink {re.escape(str(planted))}$"):
            PreviewSite(content, site).build()
        planted.unlink()
        assert sorted(p.name for p in victim.iterdir()) == ["dense.html", "precious.html"]


def test_a_build_deletes_only_the_files_its_manifest_lists(content: Path, sample_cards: None, tmp_path: Path) -> None:
    site = tmp_path / "site"
    PreviewSite(content, site).build()
    manifest = (site / MARKER_FILE).read_text().splitlines()
    assert "cards/alpha/dense.html" in manifest and "index.html" in manifest
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    planted = site / "cards" / "alpha" / "planted.txt"
    planted.write_text("not the preview's")
    # A forged manifest: paths outside the folder and files the preview never makes are ignored.
    (site / MARKER_FILE).write_text("\n".join([*manifest, "../outside.txt", str(outside), "cards/alpha/planted.txt"]))
    (content / "alpha" / "dense.md").unlink()
    PreviewSite(content, site).build()
    assert outside.read_text() == "keep me" and planted.read_text() == "not the preview's"
    assert not (site / "cards" / "alpha" / "dense.html").exists()  # a page of a removed card: made fresh
    assert "cards/alpha/dense.html" not in (site / MARKER_FILE).read_text().splitlines()


# --- the server ----------------------------------------------------------------------


@pytest.fixture
def served(content: Path, sample_cards: None, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The preview server on a free port, in this process; yields the port and the site folder."""
    site = PreviewSite(content, tmp_path / "site")
    site.build()
    server = start_server(site, 0)
    try:
        yield server.server_port, tmp_path / "site"
    finally:
        server.shutdown()
        server.server_close()


def raw_request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as it stands; return the status, the headers and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(data)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def get(port: int, target: str, host: str | None = "127.0.0.1:{port}") -> tuple[int, dict[str, str], bytes]:
    host_line = f"Host: {host.format(port=port)}\r\n" if host is not None else ""
    return raw_request(port, f"GET {target} HTTP/1.1\r\n{host_line}Connection: close\r\n\r\n".encode())


def test_server_answers_only_for_its_own_host(served: tuple[int, Path]) -> None:
    """Before: any Host was answered, so a page on a rebound domain could read the preview."""
    port, _ = served
    for host in ("127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"):
        status, headers, body = get(port, "/", host)
        assert status == 200 and b"Test Decks" in body
        assert headers["Content-Security-Policy"] == page_policy() + "; frame-ancestors 'none'"
    for host in ("evil.example:{port}", "127.0.0.1", "localhost:1", "127.0.0.1:{port}.evil.example"):
        assert get(port, "/", host)[0] == 421, host
    assert get(port, "/", None)[0] == 400


def test_server_serves_only_the_files_the_preview_wrote(served: tuple[int, Path], tmp_path: Path) -> None:
    """Before: a symlink in the folder served the whole disk."""
    port, site = served
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (site / "planted.html").write_text("<script>alert(1)</script>")
    (site / "cards" / "alpha" / "link.html").symlink_to(secret)
    (site / "disk").symlink_to("/")
    for target in (
        "/planted.html",
        "/cards/alpha/link.html",
        "/disk/etc/passwd",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/" + MARKER_FILE,
    ):
        status, _, body = get(port, target)
        assert status in (400, 404), target
        assert b"secret" not in body and b"alert" not in body
    assert get(port, "/cards/alpha/dense.html")[0] == 200
    assert get(port, "/assets/preview.js")[1]["Content-Type"] == "text/javascript; charset=utf-8"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /__digest?page=/%00 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /%ff%fe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /a%00.html HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n\r\n",
    ],
)
def test_server_answers_bad_requests_with_4xx_and_no_traceback(
    served: tuple[int, Path], request_bytes: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: a NUL or an over-long name printed a traceback; a TLS hello got no status line; 5xx for a bad version."""
    port, _ = served
    status, _, _ = raw_request(port, request_bytes.replace(b"{port}", str(port).encode()))
    assert 400 <= status < 500 or (status == 200 and b"__digest" in request_bytes)
    assert "Traceback" not in capfd.readouterr().err


# --- in a real browser -------------------------------------------------------------

SENTINEL = "SENTINEL-SCRIPT-RAN"
BROWSER_SERVICE = re.compile(r"[a-z0-9.-]+\.(?:google\.com|googleapis\.com|gvt1\.com)(?::443)? ")


class _Listener(http.server.BaseHTTPRequestHandler):
    """Records every request; stands for every other origin (directly and as the browser's proxy)."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(f"{self.headers.get('Host')} {self.path}")
        self.send_response(200)
        self.end_headers()

    def do_CONNECT(self) -> None:  # a proxied https request
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []
    handler = type("Listener", (_Listener,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_port, seen
    finally:
        server.shutdown()
        server.server_close()


def hostile_cards(write_card: WriteCard, origin: str) -> None:
    """Cards that try to run script or fetch from `origin` (or example.com) through everything that passes a build."""
    beacon = f"{origin}/beacon"
    handler = f"console.log('{SENTINEL}');fetch('{beacon}/handler')"
    write_card(
        "alpha",
        "text-markup",
        "id: alpha-text-markup\ntags: [math]\nsource: [s#1]",
        f"""
        # What does $\\text{{<img src="{beacon}/title" onerror="{handler}">}}$ show?

        $$\\text{{<img src="{beacon}/display" onerror="{handler}"><script>console.log('{SENTINEL}')</script>}}$$

        And inline $\\mbox{{<iframe src="{beacon}/iframe"></iframe>}} + x$, with a
        [link]({beacon}/link) that nobody clicks.
        """,
    )
    write_card(
        "alpha",
        "math-attributes",
        "id: alpha-math-attributes\ntags: [math]\nsource: [s#2]",
        f"""
        # Which styles does $\\color{{url({beacon}/color)}}{{x}}$ get?

        $\\style{{background:url(http://example.com/style)}}{{y}}$ and
        $\\href{{javascript:console.log('{SENTINEL}')}}{{\\text{{answer}}}}$ and
        $\\colorbox{{red;background-image:url({beacon}/colorbox)}}{{z}}$.
        """,
    )
    write_card(
        "beta",
        "cloze-markup",
        "id: beta-cloze-markup\ntags: [math]\ntype: cloze\nsource: [s#3]",
        f"""
        # Cloze

        The {{{{c1::$\\text{{<img src="{beacon}/cloze" onerror="{handler}">}}$}}}} hides.
        %
        Extra with `<img src="{beacon}/code">` in code.
        """,
    )


def browse(url: str, profile: Path, proxy_port: int) -> tuple[str, list[str]]:
    """Load `url`, click the page's own switches, and return the DOM and the console's messages."""
    result = run_chromium(
        url,
        profile,
        "--window-size=1000,900",
        "--virtual-time-budget=4000",
        # Every request to another origin goes to the listener (loopback is not proxied).
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
    )
    console = re.findall(r":CONSOLE:\d+\] (.*)", result.stderr)
    return result.stdout, console


@pytest.mark.slow
@needs_chromium
def test_a_hostile_preview_runs_no_script_and_sends_no_request(
    content: Path, write_card: WriteCard, tmp_path: Path, listener: tuple[int, list[str]]
) -> None:
    listener_port, seen = listener
    hostile_cards(write_card, f"http://127.0.0.1:{listener_port}")
    site = PreviewSite(content, tmp_path / "site")
    report_ = site.build()
    shown = [p for p in (site.preview_for(path) for path in sorted(content.glob("*/*.md"))) if p and p.card]
    # The \text cards pass a build, so their formulas reach the frames and the titles
    # (the card with \href and \style may be refused by the TeX policy instead).
    assert {p.source.stem for p in shown} >= {"text-markup", "cloze-markup"}, report_.diagnostics
    # The detector works: the same sentinel in a page of our own is seen.
    control = tmp_path / "control.html"
    control.write_text(
        f"<!doctype html><img src='http://127.0.0.1:{listener_port}/control'>"
        f"<img src='http://example.com/control'><script>console.log('{SENTINEL}')</script>"
    )
    _, console = browse(control.as_uri(), tmp_path / "profile-control", listener_port)
    assert any(SENTINEL in line for line in console), console
    assert {f"127.0.0.1:{listener_port} /control", "example.com http://example.com/control"} <= set(seen), seen
    seen.clear()

    server = start_server(site, 0)
    try:
        base = f"http://127.0.0.1:{server.server_port}/"
        pages = ["", *(p.page for p in shown)]
        urls = [base + page for page in pages]
        urls += [base + page + "?theme=night&width=phone" for page in pages[1:]]  # frames rewritten by the page
        urls += [(tmp_path / "site" / page).as_uri() for page in ("index.html", *pages[1:])]  # and from the folder
        for number, url in enumerate(urls):
            dom, console = browse(url, tmp_path / f"profile-{number}", listener_port)
            ran = [line for line in console if line.startswith(f'"{SENTINEL}')]
            assert not ran, (url, console)
            if "/cards/" in url:
                assert dom.count('sandbox=""') == dom.count("<iframe"), url
            # The page around the frames holds no element made from card text.
            outside_frames = re.sub(r'srcdoc="[^"]*"', "", dom)
            assert not re.search(r"<(img|iframe(?! class=\"side-frame\")|script(?! src))", outside_frames), url
    finally:
        server.shutdown()
        server.server_close()
    # Chromium's own services (updates, accounts, autofill) go through the proxy too: they are not the page's.
    from_pages = [request for request in seen if not BROWSER_SERVICE.match(request)]
    assert from_pages == []
