"""WCAG contrast between two colours, given as '#rrggbb', '#rgb' or browser rgb() channel lists."""

from __future__ import annotations

from collections.abc import Sequence

Colour = str | Sequence[float]


def channels(colour: Colour) -> tuple[float, float, float]:
    """Red, green and blue in 0..255."""
    if isinstance(colour, str):
        digits = colour.lstrip("#")
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    return (colour[0], colour[1], colour[2])


def luminance(colour: Colour) -> float:
    """Relative luminance (WCAG 2)."""
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in channels(colour))]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: Colour, b: Colour) -> float:
    """Contrast ratio, 1 (none) to 21 (black on white)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)
