"""Checks on image files before they are packed into a deck.

Everything here is an allow-list. An SVG is a document: opened on its own (or
by a future viewer) it could run script or fetch other files, so it is parsed
without any DTD or entity and may hold only the drawing elements, attributes
and CSS that plotting libraries write, with references inside the file only.
A raster image must be what its suffix says (checked by its magic bytes), with
its pixel size read from its header and capped, since a small file can decode
to gigabytes.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import NoReturn
from xml.parsers import expat

MAX_IMAGE_BYTES = 5_000_000
MAX_IMAGE_SIDE = 4096  # pixels, for width and height alike
RASTER_HINT = f"use a PNG, JPEG, GIF or WebP file of its suffix's type, at most {MAX_IMAGE_SIDE} pixels a side"
SVG_HINT = "SVG images may hold drawing elements only, with references inside the file"

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# What matplotlib writes (see content/*/figures/*.svg) plus the plain drawing basics.
SVG_ELEMENTS = frozenset({
    "svg", "g", "defs", "style", "title", "desc", "symbol", "use",
    "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "clipPath", "mask", "pattern", "marker", "linearGradient", "radialGradient", "stop",
})  # fmt: skip
# Presentation attributes, which are also the CSS properties a `style` attribute or <style> may set.
PRESENTATION_ATTRIBUTES = frozenset({
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap",
    "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "opacity", "color",
    "stop-color", "stop-opacity", "clip-path", "clip-rule", "mask", "marker-start", "marker-mid", "marker-end",
    "font-family", "font-size", "font-style", "font-weight", "font-variant", "text-anchor", "dominant-baseline",
    "alignment-baseline", "baseline-shift", "letter-spacing", "word-spacing", "text-decoration", "visibility",
    "display", "vector-effect", "shape-rendering", "text-rendering", "paint-order",
})  # fmt: skip
SVG_ATTRIBUTES = PRESENTATION_ATTRIBUTES | {
    # structure
    "id", "class", "version", "viewBox", "preserveAspectRatio", "width", "height", "transform", "style", "type",
    "href", "xlink:href", "xml:space", "xml:lang", "lang",
    # geometry
    "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "d", "points", "pathLength",
    "dx", "dy", "rotate", "textLength", "lengthAdjust", "offset",
    # units of containers
    "clipPathUnits", "maskUnits", "maskContentUnits", "patternUnits", "patternContentUnits", "patternTransform",
    "gradientUnits", "gradientTransform", "spreadMethod", "markerWidth", "markerHeight", "markerUnits",
    "refX", "refY", "orient",
}  # fmt: skip
CSS_PROPERTIES = PRESENTATION_ATTRIBUTES
_FRAGMENT = re.compile(r"#[A-Za-z_][A-Za-z0-9_.:-]*")
_CSS_LOCAL_URL = re.compile(r"url\(\s*#[A-Za-z_][A-Za-z0-9_.:-]*\s*\)")
_CSS_COLOUR_FUNCTION = re.compile(r"(?:rgba?|hsla?)\([0-9.,%\s]*\)")
# What is left of a CSS value once its local url(#id) and colour functions are taken out: no
# function, escape, at-rule or comment can be written with these characters.
_CSS_VALUE = re.compile(r"[A-Za-z0-9#.,%\s'\"_+-]*")
_CSS_SELECTORS = re.compile(r"[A-Za-z0-9*#.,\s_-]+")
_CSS_RULE = re.compile(r"\s*([^{}]*)\{([^{}]*)\}\s*")
_CSS_BANNED = (("\\", "a CSS escape"), ("@", "an @-rule such as @import"), ("/*", "a CSS comment"),
               ("expression", "expression()"))  # fmt: skip


class _Refused(Exception):
    """A construct the SVG may not hold; the message names it."""


def image_problem(suffix: str, data: bytes) -> tuple[str, str] | None:
    """Why this image may not be packed, as (problem, hint), or None when it may.

    `suffix` is the file's lower-case suffix ('.png', '.svg', ...).
    """
    if len(data) > MAX_IMAGE_BYTES:
        return f"is larger than {MAX_IMAGE_BYTES // 1_000_000} MB", "shrink it"
    if suffix == ".svg":
        problem = svg_problem(data)
        return (problem, SVG_HINT) if problem else None
    problem = raster_problem(suffix, data)
    return (problem, RASTER_HINT) if problem else None


# --- raster images --------------------------------------------------------------------------------

_KINDS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "WebP"}


def raster_problem(suffix: str, data: bytes) -> str | None:
    """Why this PNG, JPEG, GIF or WebP file may not be packed, or None.

    The contents must be of the type the suffix names, and the pixel size read
    from the header must be within MAX_IMAGE_SIDE on each side.
    """
    kind = _KINDS.get(suffix)
    if kind is None:
        return f"'{suffix}' is not a supported image type"
    actual = sniff(data)
    if actual != kind:
        found = f"a {actual} image" if actual else "not an image"
        return f"the file is {found}, but its suffix '{suffix}' says {kind}"
    try:
        width, height = _READERS[kind](data)
    except (ValueError, struct.error, IndexError) as exc:
        return f"its {kind} header cannot be read ({exc})"
    if width < 1 or height < 1:
        return f"its {kind} header gives no size ({width}x{height})"
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        return f"it is {width}x{height} pixels; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
    return None


def sniff(data: bytes) -> str | None:
    """The raster type named by the file's magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def png_size(data: bytes) -> tuple[int, int]:
    # The IHDR chunk comes first, always 13 bytes, with a CRC that must match.
    length, chunk = struct.unpack(">I4s", data[8:16])
    if chunk != b"IHDR" or length != 13:
        raise ValueError("the first chunk is not IHDR")
    body = data[12:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(body) != crc:
        raise ValueError("IHDR checksum mismatch")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


# JPEG markers with no length field, and the start-of-frame markers (not DHT C4, JPG C8, DAC CC).
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int]:
    position = 2
    while position < len(data):
        if data[position] != 0xFF:
            raise ValueError(f"no marker at byte {position}")
        while data[position] == 0xFF:  # fill bytes
            position += 1
        marker = data[position]
        position += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            break
        (length,) = struct.unpack(">H", data[position : position + 2])
        if length < 2:
            raise ValueError("segment length below 2")
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[position + 3 : position + 7])
            return int(width), int(height)
        position += length
    raise ValueError("no frame header")


def gif_size(data: bytes) -> tuple[int, int]:
    # The logical screen, and every frame: a frame may be larger than the screen it is drawn on.
    width, height, flags = struct.unpack("<HHB", data[6:11])
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    largest_width, largest_height = int(width), int(height)
    while position < len(data):
        block = data[position]
        if block == 0x3B:  # trailer
            return largest_width, largest_height
        if block == 0x21:  # extension: label, then data sub-blocks
            position = _skip_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor
            frame_width, frame_height, frame_flags = struct.unpack("<HHB", data[position + 5 : position + 10])
            largest_width, largest_height = max(largest_width, frame_width), max(largest_height, frame_height)
            position += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0)
            position = _skip_sub_blocks(data, position + 1)  # after the LZW code size
        else:
            raise ValueError(f"unknown block 0x{block:02x}")
    return largest_width, largest_height  # a truncated file: browsers show what is there


def _skip_sub_blocks(data: bytes, position: int) -> int:
    while position < len(data) and (size := data[position]) != 0:
        position += size + 1
    return position + 1


def webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    body = data[20:]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sizes
        if body[3:6] != b"\x9d\x01\x2a":
            raise ValueError("no VP8 key frame")
        width, height = struct.unpack("<HH", body[6:10])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L":  # lossless: a signature byte, then 14-bit sizes minus one
        if body[0] != 0x2F:
            raise ValueError("no VP8L signature")
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas, 24-bit sizes minus one
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return width, height
    raise ValueError(f"unknown first chunk {chunk!r}")


_READERS = {"PNG": png_size, "JPEG": jpeg_size, "GIF": gif_size, "WebP": webp_size}


# --- SVG ------------------------------------------------------------------------------------------


def svg_problem(data: bytes) -> str | None:
    """Why this SVG may not be packed, or None when it holds allowed drawing elements only."""
    checker = _SvgChecker()
    try:
        checker.parse(data)
    except _Refused as refused:
        return str(refused)
    except expat.ExpatError as exc:
        return f"not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno})"
    return None


class _SvgChecker:
    """Walks the SVG with expat, refusing anything outside the allow-list as soon as it appears."""

    def __init__(self) -> None:
        self.depth = 0
        self.style: list[str] | None = None  # the text of the <style> element being read
        parser = expat.ParserCreate(namespace_separator=" ")
        # Refuse every kind of DTD content: no entity can expand or reach outside the file.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._doctype
        parser.UnparsedEntityDeclHandler = self._doctype
        parser.NotationDeclHandler = self._doctype
        parser.ExternalEntityRefHandler = self._doctype
        parser.SkippedEntityHandler = self._doctype
        parser.ProcessingInstructionHandler = self._instruction
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        self.parser = parser

    def parse(self, data: bytes) -> None:
        self.parser.Parse(data, True)

    def _doctype(self, *args: object) -> NoReturn:
        raise _Refused("document type declarations and entities are not allowed")

    def _instruction(self, target: str, data: str) -> NoReturn:
        # <?xml-stylesheet href=...?> loads outside CSS in a browser; no instruction is needed.
        raise _Refused(f"processing instruction <?{target}?> is not allowed")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if namespace != SVG_NS:
            where = f"namespace '{namespace}'" if namespace else "no namespace"
            raise _Refused(f"element <{local}> is not allowed (it is in {where}, not SVG's)")
        if local not in SVG_ELEMENTS:
            raise _Refused(f"element <{local}> is not allowed")
        if self.depth == 0 and local != "svg":
            raise _Refused(f"the root element is <{local}>, not <svg>")
        if self.style is not None:
            raise _Refused(f"element <{local}> inside <style> is not allowed")
        self.depth += 1
        for raw, value in attributes.items():
            attribute = _attribute_name(raw)
            if attribute not in SVG_ATTRIBUTES:
                kind = "event attribute" if attribute.lower().startswith("on") else "attribute"
                raise _Refused(f"{kind} '{attribute}' on <{local}> is not allowed")
            _check_attribute(local, attribute, value)
        if local == "style":
            self.style = []

    def _end(self, name: str) -> None:
        self.depth -= 1
        if self.style is not None:
            css, self.style = "".join(self.style), None
            _check_stylesheet(css)

    def _text(self, text: str) -> None:
        if self.style is not None:
            self.style.append(text)


def _attribute_name(raw: str) -> str:
    namespace, _, local = raw.rpartition(" ")
    prefix = {"": "", XLINK_NS: "xlink:", XML_NS: "xml:"}.get(namespace)
    if prefix is None:
        raise _Refused(f"attribute '{local}' in namespace '{namespace}' is not allowed")
    return prefix + local


def _check_attribute(element: str, attribute: str, value: str) -> None:
    shown = value if len(value) <= 60 else value[:57] + "..."
    if attribute in ("href", "xlink:href"):
        if not _FRAGMENT.fullmatch(value.strip()):
            raise _Refused(
                f"'{attribute}' on <{element}> points to '{shown}'; only '#id' references inside the file are allowed"
            )
    elif attribute == "style":
        for declaration in value.split(";"):
            _check_declaration(declaration, f"the style attribute of <{element}>")
    elif attribute == "type":
        if value.strip() != "text/css":
            raise _Refused(f"type '{shown}' on <{element}> is not allowed (only text/css)")
    elif "url(" in value.lower() or "\\" in value:
        _check_css_value(value, f"'{attribute}' on <{element}>")


def _check_stylesheet(css: str) -> None:
    where = "<style>"
    _check_banned(css, where)
    rest = css
    while rest.strip():
        rule = _CSS_RULE.match(rest)
        if rule is None:
            raise _Refused(f"{where} holds CSS other than plain rules: '{rest.strip()[:40]}'")
        if not _CSS_SELECTORS.fullmatch(rule[1]):
            raise _Refused(f"{where} holds the selector '{rule[1].strip()[:40]}', which is not allowed")
        for declaration in rule[2].split(";"):
            _check_declaration(declaration, where)
        rest = rest[rule.end() :]


def _check_declaration(declaration: str, where: str) -> None:
    if not declaration.strip():
        return
    _check_banned(declaration, where)
    name, colon, value = declaration.partition(":")
    name = name.strip().lower()
    if not colon or name not in CSS_PROPERTIES:
        raise _Refused(f"{where} sets the CSS property '{name[:40]}', which is not allowed")
    _check_css_value(value, f"{where} ('{name}')")


def _check_css_value(value: str, where: str) -> None:
    _check_banned(value, where)
    rest = _CSS_COLOUR_FUNCTION.sub("", _CSS_LOCAL_URL.sub("", value))
    if "url(" in rest.lower():
        raise _Refused(f"{where} holds a url() to outside the file; only url(#id) inside the file is allowed")
    if not _CSS_VALUE.fullmatch(rest):
        shown = value.strip() if len(value.strip()) <= 40 else value.strip()[:37] + "..."
        raise _Refused(f"{where} holds the CSS value '{shown}', which is not allowed")


def _check_banned(css: str, where: str) -> None:
    lowered = css.lower()
    for needle, what in _CSS_BANNED:
        if needle in lowered:
            raise _Refused(f"{where} holds {what}, which is not allowed")
