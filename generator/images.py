"""Checks on image files before they are packed into a deck.

Raster images are inert. An SVG is a document: opened on its own (or by a
future viewer) it could run script or fetch other files, so a packed SVG may
hold drawing elements only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

FORBIDDEN_SVG_ELEMENTS = frozenset({"script", "foreignobject", "iframe", "object", "embed", "a", "handler", "listener"})
LINK_ATTRIBUTES = frozenset({"href", "src"})


def svg_problem(data: bytes) -> str | None:
    """Why this SVG may not be packed, or None when it holds drawing elements only."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return "document type declarations are not allowed"
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return f"not well-formed XML ({exc})"
    for element in root.iter():
        name = _local(element.tag).lower()
        if name in FORBIDDEN_SVG_ELEMENTS:
            return f"element <{_local(element.tag)}> is not allowed"
        for attribute, value in element.attrib.items():
            local = _local(attribute).lower()
            if local.startswith("on"):
                return f"event attribute '{_local(attribute)}' is not allowed"
            if local in LINK_ATTRIBUTES and not value.startswith("#"):
                return f"reference to '{value[:60]}' is not allowed (only '#id' references inside the file)"
            if "url(" in value.replace(" ", "") and "url(#" not in value.replace(" ", ""):
                return "external url(...) references are not allowed"
    return None


def _local(name: str) -> str:
    """'{namespace}tag' → 'tag'."""
    return name.rpartition("}")[2]
