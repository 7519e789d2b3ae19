"""Images are packed by allow-list: SVG drawing only, raster files that are what they say and not too large."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

from generator.cards.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    RASTER_HINT,
    SVG_HINT,
    gif_size,
    image_problem,
    jpeg_size,
    png_size,
    svg_problem,
    webp_size,
)
from tests.conftest import require_module

CONTENT = Path(__file__).resolve().parent.parent / "content"
COMMITTED = sorted(CONTENT.glob("*/figures/*.svg"))
# A complete 1x1 grey PNG, for tests that pack an image (a literal: zlib builds differ in their output).
ONE_PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"
    "0000000a49444154789c636000000002000148afa4710000000049454e44ae426082"
)
SVG_OPEN = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'


def svg(body: str, *, open_tag: str = SVG_OPEN, prologue: str = "") -> bytes:
    return f"{prologue}{open_tag}{body}</svg>".encode()


# --- SVG ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.relative_to(CONTENT).as_posix())
def test_committed_figures_pass(path: Path) -> None:
    assert svg_problem(path.read_bytes()) is None


def test_committed_figures_exist() -> None:
    assert len(COMMITTED) >= 10  # the allow-list is drawn from them: they must be there to check it


def test_plain_drawing_passes() -> None:
    drawing = svg(
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/><stop offset="1" stop-color="red"/>'
        '</linearGradient><clipPath id="c"><rect width="5" height="5"/></clipPath></defs>'
        '<style type="text/css"><![CDATA[ .a, #b { fill: rgb(10, 20, 30); stroke-width: 0.5 } ]]></style>'
        '<g clip-path="url(#c)" transform="rotate(45 5 5)"><circle cx="5" cy="5" r="2" fill="url(#g)"/>'
        '<ellipse rx="1" ry="2"/><line x1="0" y1="0" x2="1" y2="1"/><polygon points="0,0 1,1 0,1"/>'
        '<path id="p" d="M0 0L1 1" style="stroke: #000; stroke-dasharray: 1, 2; font-family: \'DejaVu Sans\'"/>'
        '<use xlink:href="#p" x="1"/><use href="#p"/><text x="1" y="2" class="a">x &lt; y</text></g>'
    )
    assert svg_problem(drawing) is None


UTF16_DOCTYPE = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE svg [<!ENTITY a "x">]>' + SVG_OPEN).encode(
    "utf-16"
) + "<text>&a;</text></svg>".encode("utf-16-le")


# Each hostile SVG, and the exact problem; the old block-list passed every one marked (new).
HOSTILE_SVG = [
    pytest.param(
        svg('<style>@import url("http://evil.example/a.css");</style>'),
        "<style> holds an @-rule such as @import, which is not allowed",
        id="style-import(new)",
    ),
    pytest.param(
        svg("<style>rect { fill: url(http://evil.example/pixel.png) }</style><rect/>"),
        "<style> ('fill') holds a url() to outside the file; only url(#id) inside the file is allowed",
        id="style-rule-url(new)",
    ),
    pytest.param(
        svg("<rect/>", prologue='<?xml-stylesheet type="text/css" href="http://evil.example/a.css"?>'),
        "processing instruction <?xml-stylesheet?> is not allowed",
        id="xml-stylesheet(new)",
    ),
    pytest.param(
        svg('<rect style="fill: URL(http://evil.example/pixel.png)"/>'),
        "the style attribute of <rect> ('fill') holds a url() to outside the file; "
        "only url(#id) inside the file is allowed",
        id="uppercase-url-in-style(new)",
    ),
    pytest.param(
        svg('<rect fill="URL(http://evil.example/pixel.png)"/>'),
        "'fill' on <rect> holds a url() to outside the file; only url(#id) inside the file is allowed",
        id="uppercase-url-in-attribute(new)",
    ),
    pytest.param(
        svg(r'<rect style="fill: u\72l(http://evil.example/pixel.png)"/>'),
        "the style attribute of <rect> holds a CSS escape, which is not allowed",
        id="css-escape(new)",
    ),
    pytest.param(
        svg('<rect style="behavior: url(#a)"/>'),
        "the style attribute of <rect> sets the CSS property 'behavior', which is not allowed",
        id="css-property(new)",
    ),
    pytest.param(
        svg('<rect style="fill: expression(alert(1))"/>'),
        "the style attribute of <rect> holds expression(), which is not allowed",
        id="css-expression(new)",
    ),
    pytest.param(
        svg("<rect style=\"fill: image-set('a.png' 1x)\"/>"),
        "the style attribute of <rect> ('fill') holds the CSS value 'image-set('a.png' 1x)', which is not allowed",
        id="css-function(new)",
    ),
    pytest.param(
        svg('<use href="#a"><animate attributeName="href" values="http://evil.example/a.svg#b"/></use>'),
        "element <animate> is not allowed",
        id="animate-href(new)",
    ),
    pytest.param(
        svg(
            '<h:meta xmlns:h="http://www.w3.org/1999/xhtml" http-equiv="refresh" content="0;url=http://evil.example"/>'
        ),
        "element <meta> is not allowed (it is in namespace 'http://www.w3.org/1999/xhtml', not SVG's)",
        id="foreign-namespace(new)",
    ),
    pytest.param(
        svg('<use href="#a"/>', open_tag=SVG_OPEN.replace("<svg ", '<svg xml:base="http://evil.example/" ')),
        "attribute 'xml:base' on <svg> is not allowed",
        id="xml-base(new)",
    ),
    pytest.param(
        svg('<rect e:x="1" xmlns:e="http://evil.example/ns"/>'),
        "attribute 'x' in namespace 'http://evil.example/ns' is not allowed",
        id="foreign-attribute(new)",
    ),
    pytest.param(
        svg('<style type="text/ecmascript">rect {}</style>'),
        "type 'text/ecmascript' on <style> is not allowed (only text/css)",
        id="style-type(new)",
    ),
    pytest.param(
        svg("<style>rect { fill: red } <g/></style>"),
        "element <g> inside <style> is not allowed",
        id="element-in-style(new)",
    ),
    pytest.param(
        svg("<style>rect:has(image[href]) { fill: red }</style>"),
        "<style> holds the selector 'rect:has(image[href])', which is not allowed",
        id="css-selector(new)",
    ),
    pytest.param(UTF16_DOCTYPE, "document type declarations and entities are not allowed", id="utf16-doctype(new)"),
    pytest.param(
        svg("<text>&x;</text>", prologue='<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        "document type declarations and entities are not allowed",
        id="external-entity",
    ),
    pytest.param(svg('<script href="x.js"/>'), "element <script> is not allowed", id="script"),
    pytest.param(svg("<foreignObject/>"), "element <foreignObject> is not allowed", id="foreign-object"),
    pytest.param(svg('<image href="#a"/>'), "element <image> is not allowed", id="image(new)"),
    pytest.param(svg('<a href="#a"><rect/></a>'), "element <a> is not allowed", id="link"),
    pytest.param(
        svg("", open_tag=SVG_OPEN.replace("<svg ", '<svg onload="alert(1)" ')),
        "event attribute 'onload' on <svg> is not allowed",
        id="event-attribute",
    ),
    pytest.param(
        svg('<use xlink:href="http://evil.example/a.svg#b"/>'),
        "'xlink:href' on <use> points to 'http://evil.example/a.svg#b'; only '#id' references inside the file "
        "are allowed",
        id="external-use",
    ),
    pytest.param(
        svg('<use href="javascript:alert(1)"/>'),
        "'href' on <use> points to 'javascript:alert(1)'; only '#id' references inside the file are allowed",
        id="javascript-href",
    ),
    pytest.param(
        b'<svg width="1"><rect/></svg>',
        "element <svg> is not allowed (it is in no namespace, not SVG's)",
        id="no-ns(new)",
    ),
    pytest.param(
        b'<g xmlns="http://www.w3.org/2000/svg"/>', "the root element is <g>, not <svg>", id="root-not-svg(new)"
    ),
    pytest.param(svg("<rect>"), "not well-formed XML (mismatched tag, line 1)", id="not-well-formed"),
]


@pytest.mark.parametrize(("data", "problem"), HOSTILE_SVG)
def test_hostile_svg_is_refused_naming_what(data: bytes, problem: str) -> None:
    assert svg_problem(data) == problem
    assert image_problem(".svg", data) == (problem, SVG_HINT)


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    data = svg("<text>&l9;</text>", prologue=f'<!DOCTYPE svg [<!ENTITY l0 "lol">{entities}]>')
    assert svg_problem(data) == "document type declarations and entities are not allowed"


# --- raster images --------------------------------------------------------------------------------


def png(width: int, height: int, *, pixels: bool = True) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    rows = zlib.compress(b"\x00" * ((width + 1) * height)) if pixels else b""
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def gif(width: int, height: int, frame: tuple[int, int] | None = None) -> bytes:
    frame_width, frame_height = frame or (width, height)
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    comment = b"\x21\xfe\x03abc\x00"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, frame_width, frame_height, 0) + b"\x02\x02\x4c\x01\x00"
    return screen + comment + image + b"\x3b"


def webp(chunk: bytes, body: bytes) -> bytes:
    payload = b"WEBP" + chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def webp_lossless(width: int, height: int) -> bytes:
    return webp(b"VP8L", b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14) + b"\x00" * 4)


def webp_lossy(width: int, height: int) -> bytes:
    return webp(b"VP8 ", b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8)


def webp_extended(width: int, height: int) -> bytes:
    return webp(b"VP8X", b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


@pytest.mark.parametrize(
    ("suffix", "data", "size"),
    [
        (".png", png(7, 5), (7, 5)),
        (".jpg", jpeg(7, 5), (7, 5)),
        (".jpeg", jpeg(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)),
        (".gif", gif(7, 5), (7, 5)),
        (".webp", webp_lossless(7, 5), (7, 5)),
        (".webp", webp_lossy(7, 5), (7, 5)),
        (".webp", webp_extended(7, 5), (7, 5)),
    ],
    ids=["png", "jpg", "jpeg-at-the-cap", "gif", "webp-lossless", "webp-lossy", "webp-extended"],
)
def test_raster_images_of_their_type_within_the_cap_pass(suffix: str, data: bytes, size: tuple[int, int]) -> None:
    assert image_problem(suffix, data) is None
    reader = {".png": png_size, ".jpg": jpeg_size, ".jpeg": jpeg_size, ".gif": gif_size, ".webp": webp_size}[suffix]
    assert reader(data) == size


def test_the_shared_one_pixel_png_passes() -> None:
    assert image_problem(".png", ONE_PIXEL_PNG) is None and png_size(ONE_PIXEL_PNG) == (1, 1)


HOSTILE_RASTER = [
    pytest.param(
        ".png", b"<html><script>alert(1)</script></html>", "the file is not an image, but its suffix '.png' says PNG",
        id="html-named-png",
    ),
    pytest.param(".gif", jpeg(4, 4), "the file is a JPEG image, but its suffix '.gif' says GIF", id="jpeg-named-gif"),
    pytest.param(".webp", b"RIFF\x00\x00\x00\x00WAVEfmt ", "the file is not an image, but its suffix '.webp' says WebP",
                 id="wav-named-webp"),
    pytest.param(".png", png(60000, 60000, pixels=False), "it is 60000x60000 pixels; the limit is 4096x4096",
                 id="png-too-large"),
    pytest.param(".png", png(4097, 1, pixels=False), "it is 4097x1 pixels; the limit is 4096x4096", id="png-too-wide"),
    pytest.param(".jpg", jpeg(100, 8000), "it is 100x8000 pixels; the limit is 4096x4096", id="jpeg-too-tall"),
    pytest.param(".jpg", jpeg(100, 0), "its JPEG header gives no size (100x0)", id="jpeg-no-height"),
    pytest.param(".gif", gif(10, 10, frame=(65535, 65535)), "it is 65535x65535 pixels; the limit is 4096x4096",
                 id="gif-frame-larger-than-screen"),
    pytest.param(".webp", webp_extended(16384, 16384), "it is 16384x16384 pixels; the limit is 4096x4096",
                 id="webp-too-large"),
    pytest.param(".png", png(4, 4)[:29] + b"\x00\x00\x00\x00" + png(4, 4)[33:],
                 "its PNG header cannot be read (IHDR checksum mismatch)", id="png-bad-checksum"),
    pytest.param(".png", b"\x89PNG\r\n\x1a\n", "its PNG header cannot be read (unpack requires a buffer of 8 bytes)",
                 id="png-signature-only"),
    pytest.param(".jpg", b"\xff\xd8\xff\xda\x00\x02", "its JPEG header cannot be read (no frame header)",
                 id="jpeg-without-frame"),
    pytest.param(".bmp", b"BM", "'.bmp' is not a supported image type", id="bmp"),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "data", "problem"), HOSTILE_RASTER)
def test_hostile_raster_image_is_refused_naming_why(suffix: str, data: bytes, problem: str) -> None:
    assert image_problem(suffix, data) == (problem, RASTER_HINT)


def test_the_byte_cap_holds_for_every_type() -> None:
    assert image_problem(".png", png(1, 1) + b"\x00" * MAX_IMAGE_BYTES) == ("is larger than 5 MB", "shrink it")
    assert image_problem(".svg", svg(" " * MAX_IMAGE_BYTES)) == ("is larger than 5 MB", "shrink it")


def test_sizes_match_what_a_real_encoder_writes() -> None:
    image_module = require_module("PIL.Image")
    picture = image_module.new("RGB", (37, 23), (200, 10, 10))
    frames = [picture, image_module.new("RGB", (37, 23), (10, 200, 10))]
    for suffix, options in (
        (".png", {"format": "PNG"}),
        (".jpg", {"format": "JPEG", "progressive": True}),
        (".jpeg", {"format": "JPEG"}),
        (".gif", {"format": "GIF", "save_all": True, "append_images": frames[1:]}),
        (".webp", {"format": "WEBP", "lossless": True}),
        (".webp", {"format": "WEBP", "quality": 50}),
        (".webp", {"format": "WEBP", "save_all": True, "append_images": frames[1:]}),
    ):
        buffer = io.BytesIO()
        picture.save(buffer, **options)
        assert image_problem(suffix, buffer.getvalue()) is None, options
        reader = {".png": png_size, ".jpg": jpeg_size, ".jpeg": jpeg_size, ".gif": gif_size, ".webp": webp_size}
        assert reader[suffix](buffer.getvalue()) == (37, 23), options
