"""The SVG figures on the cards: one small drawing function per figure, rendered byte-reproducibly.

`decks figures` (or `python -m generator.authoring.figures`) rewrites every figure under content/;
`--check` writes nothing and exits 1 naming each figure whose committed file differs from a fresh
render. The deck build never
imports this module: to it a figure is an ordinary image file next to the cards.

Every figure is drawn for a card read on a phone (about 400 px wide) in light or night mode: a fixed
width, an opaque white background, dark text, fonts of at least 12 px after scaling to a 412 px
phone (night mode inverts the figure in the note type's CSS), and the
colour-blind-safe Okabe-Ito colours, with line styles or labels so colour is never the only cue.
"""

# The figures print typographic characters on purpose: × (times), − (minus), σ (sigma).
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import io
import itertools
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as DrawingPath
from matplotlib.typing import RcKeyType

# --- shared style -------------------------------------------------------------------------------

WIDTH = 6.0  # inches; every figure has this width so that text scales the same on every card
TEXT = 15.0  # points; at 400 px wide a 6-inch figure shows 15 pt as about 14 px
# A 412 px phone shows the 432-pt figure 389 px wide (the card's padding aside), 0.9 px a point:
# 13.5 pt is the least that stays 12 px there.
MIN_TEXT = 13.5
SMALL = 14.0  # the smallest ordinary text: 12.6 px on that phone
INK = "#1a1a1a"
MUTED = "#595959"  # secondary lines and text, 7:1 on white
LIGHT = "#c8c8c8"
PANEL = "#eeeeee"
PADDING = "#d9d9d9"
# Okabe-Ito: colours chosen to stay distinct under every common colour-vision deficiency.
BLUE = "#0072B2"
VERMILLION = "#D55E00"
GREEN = "#009E73"
PURPLE = "#AA3377"  # Paul Tol's purple: Okabe-Ito's reddish purple is too light for thin lines on white
ORANGE = "#E69F00"


def tint(colour: str, amount: float) -> str:
    """`colour` mixed with white (`amount` 1 keeps it): fills light enough for dark text."""
    channels = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(255 - (255 - channel) * amount) for channel in channels]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


GATE_FILL = tint(BLUE, 0.3)
CANDIDATE_FILL = tint(ORANGE, 0.35)

STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: small files, sharp at any size
    "svg.hashsalt": "dl-interview-decks",  # fixed ids instead of random ones
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],  # any sans-serif will do on the reader's device
    "font.size": TEXT,
    "axes.titlesize": TEXT,
    "axes.labelsize": TEXT,
    "xtick.labelsize": SMALL + 1,
    "ytick.labelsize": SMALL + 1,
    "legend.fontsize": SMALL + 1,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": MUTED,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlepad": 6,
    "lines.linewidth": 2.6,
    "lines.solid_capstyle": "round",
    "legend.frameon": False,
    "figure.facecolor": "white",  # opaque: the figure cannot see whether the card is in night mode
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.constrained_layout.w_pad": 0.12,  # inches of white margin around the drawing
    "figure.constrained_layout.h_pad": 0.12,
}


def new_figure(height: float) -> Figure:
    """A blank figure of the shared width, laid out by matplotlib's constrained layout."""
    return Figure(figsize=(WIDTH, height), layout="constrained")


def diagram_axes(fig: Figure, xlim: tuple[float, float], ylim: tuple[float, float]) -> Axes:
    """An axes for a drawing: equal units on both axes, no ticks, no frame."""
    ax = fig.add_subplot()
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax


def schematic(ax: Axes) -> None:
    """Axes of an illustrative curve: the shape matters, the numbers would only distract."""
    ax.set_xticks([])
    ax.set_yticks([])


def box(
    ax: Axes,
    centre: tuple[float, float],
    size: tuple[float, float],
    text: str = "",
    face: str = "white",
    edge: str = INK,
    fontsize: float = SMALL,
) -> None:
    """A rounded box with centred text."""
    (x, y), (w, h) = centre, size
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.12", fc=face, ec=edge, lw=1.6, zorder=3
        )
    )
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, linespacing=1.1, zorder=4)


NODE_RADIUS = 0.26


def node(ax: Axes, centre: tuple[float, float], symbol: str) -> None:
    """A pointwise operation (× or +) drawn as a small circle on a data path."""
    ax.add_patch(Circle(centre, NODE_RADIUS, fc="white", ec=INK, lw=1.6, zorder=3))
    ax.text(*centre, symbol, ha="center", va="center_baseline", fontsize=TEXT, fontweight="bold", zorder=4)


def wire(ax: Axes, points: Sequence[tuple[float, float]], head: bool = True) -> None:
    """A data path through `points`, with an arrowhead at the end unless `head` is False."""
    xs, ys = zip(*points, strict=True)
    body = len(points) - 1 if head else len(points)
    if body > 1:
        ax.plot(xs[:body], ys[:body], color=INK, lw=1.6, solid_capstyle="butt", zorder=2)
    if head:
        arrow(ax, points[-2], points[-1])


def arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], **style: Any) -> None:
    """A straight arrow that ends exactly at `end`."""
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>,head_length=6,head_width=3.5",
            color=INK,
            lw=1.6,
            shrinkA=0,
            shrinkB=0,
            zorder=2,
            **style,
        )
    )


def dot(ax: Axes, at: tuple[float, float]) -> None:
    """A junction where a path splits."""
    ax.add_patch(Circle(at, 0.07, fc=INK, ec="none", zorder=3))


def subscripted(ax: Axes, at: tuple[float, float], base: str, subscript: str, fontsize: float = TEXT) -> None:
    """Italic `base` with a lowered `subscript` starting at `at`.

    Plain text rather than the subscript characters (ₜ) or mathtext, which name
    fonts that phones often lack.
    """
    ax.annotate(base, at, ha="left", va="baseline", fontsize=fontsize, fontstyle="italic", annotation_clip=False)
    ax.annotate(
        subscript,
        at,
        xytext=(0.62 * fontsize, -0.25 * fontsize),  # one italic letter to the right, a third of a line lower
        textcoords="offset points",
        ha="left",
        va="baseline",
        fontsize=max(0.8 * fontsize, MIN_TEXT),  # small, yet legible on a phone
        annotation_clip=False,
    )


def grid_lines(ax: Axes, left: float, bottom: float, cols: int, rows: int, fill: str = "white") -> None:
    """A `cols`×`rows` grid of unit cells: one filled rectangle and one path for all its lines."""
    ax.add_patch(Rectangle((left, bottom), cols, rows, fc=fill, ec="none", zorder=1))
    xs: list[float] = []
    ys: list[float] = []
    for c in range(cols + 1):
        xs += [left + c, left + c, math.nan]
        ys += [bottom, bottom + rows, math.nan]
    for r in range(rows + 1):
        xs += [left, left + cols, math.nan]
        ys += [bottom + r, bottom + r, math.nan]
    ax.plot(xs, ys, color=MUTED, lw=0.9, solid_capstyle="butt", zorder=2)


def rectangles(ax: Axes, corners: Sequence[tuple[float, float, float, float]], **style: Any) -> None:
    """Rectangles given as (left, bottom, width, height), all in one style, drawn as one path: a small file."""
    vertices: list[tuple[float, float]] = []
    for left, bottom, width, height in corners:
        vertices += [(left, bottom), (left + width, bottom), (left + width, bottom + height), (left, bottom + height)]
        vertices.append((left, bottom))
    codes = [DrawingPath.MOVETO, DrawingPath.LINETO, DrawingPath.LINETO, DrawingPath.LINETO, DrawingPath.CLOSEPOLY]
    codes *= len(corners)
    ax.add_patch(PathPatch(DrawingPath(vertices, codes), **style))


# --- activations ----------------------------------------------------------------------------------

LEAKY_SLOPE = 0.1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.array([math.erf(value / math.sqrt(2)) for value in x]))


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)


def _jump_at_zero(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Leave a gap at x = 0, where the derivative jumps, instead of drawing a vertical step."""
    return np.where(x == 0, np.nan, values)


@dataclass(frozen=True)
class Activation:
    name: str
    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    colour: str
    dashes: tuple[float, ...]  # empty for a solid line; styles tell the curves apart without colour


ACTIVATIONS = (
    Activation("sigmoid", _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)), BLUE, ()),
    Activation("tanh", np.tanh, lambda x: 1 - np.tanh(x) ** 2, VERMILLION, (5, 2)),
    Activation("ReLU", lambda x: np.maximum(x, 0), lambda x: _jump_at_zero((x > 0) * 1.0, x), INK, ()),
    Activation(
        f"leaky ReLU\n(slope {LEAKY_SLOPE})",
        lambda x: np.where(x > 0, x, LEAKY_SLOPE * x),
        lambda x: _jump_at_zero(np.where(x > 0, 1.0, LEAKY_SLOPE), x),
        GREEN,
        (1, 1.2),
    ),
    Activation(
        "GELU", lambda x: x * _normal_cdf(x), lambda x: _normal_cdf(x) + x * _normal_pdf(x), PURPLE, (6, 1.5, 1.5, 1.5)
    ),
)


def _activation_plot(derivatives: bool) -> Figure:
    fig = new_figure(2.9)
    ax = fig.add_subplot()
    x = np.linspace(-4, 4, 161)  # includes 0 exactly, where the ReLU derivatives jump
    ax.axhline(0, color=LIGHT, lw=1, zorder=0)
    ax.axvline(0, color=LIGHT, lw=1, zorder=0)
    for activation in ACTIVATIONS:
        curve = activation.derivative if derivatives else activation.function
        style = (0, activation.dashes) if activation.dashes else "-"
        ax.plot(x, curve(x), color=activation.colour, linestyle=style, label=activation.name)
    ax.set_xlim(-4, 4)
    ax.set_xticks([-4, -2, 0, 2, 4], ["−4", "−2", "0", "2", "4"])
    ax.set_xlabel("x", labelpad=0)
    if derivatives:
        ax.set_ylim(-0.15, 1.2)
        ax.set_yticks([0, 0.25, 0.5, 1], ["0", "0.25", "0.5", "1"])
        ax.set_ylabel("derivative")
    else:
        ax.set_ylim(-1.2, 2.5)
        ax.set_yticks([-1, 0, 1, 2], ["−1", "0", "1", "2"])
        ax.set_ylabel("output")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), handlelength=2.2, labelspacing=0.45)
    return fig


def activation_functions() -> Figure:
    return _activation_plot(derivatives=False)


def activation_derivatives() -> Figure:
    return _activation_plot(derivatives=True)


# --- convolutional networks -----------------------------------------------------------------------


def conv_stride_padding() -> Figure:
    fig = new_figure(3.7)
    ax = diagram_axes(fig, (-0.2, 17.0), (-1.4, 10.2))
    grid_lines(ax, 0, 0, 9, 9, fill=PADDING)  # the grey ring is the zero padding
    ax.add_patch(Rectangle((1, 1), 7, 7, fc="white", ec="none", zorder=1))
    ax.text(4.5, -0.9, "7×7 input, zero padding 1", ha="center", va="center", fontsize=TEXT)
    # The first two positions of the 3×3 window, two cells apart.
    for left, colour, dashes in ((0, BLUE, None), (2, VERMILLION, (0, (3, 1.5)))):
        ax.add_patch(Rectangle((left, 6), 3, 3, fill=False, ec=colour, lw=3.4, linestyle=dashes or "-", zorder=4))
    arrow(ax, (1.5, 9.6), (3.5, 9.6))
    ax.text(3.9, 9.6, "stride 2", va="center", fontsize=TEXT)
    # Output: one cell per window position, in that window's colour.
    grid_lines(ax, 12.6, 2.5, 4, 4)
    for output_left, colour in ((12.6, BLUE), (13.6, VERMILLION)):
        ax.add_patch(Rectangle((output_left, 5.5), 1, 1, fc=tint(colour, 0.4), ec=colour, lw=2.6, zorder=4))
    ax.text(14.6, 7.2, "4×4 output", ha="center", va="center", fontsize=TEXT)
    arrow(ax, (9.6, 4.5), (12.1, 4.5))
    ax.text(10.85, 5.3, "3×3 filter", ha="center", va="center", fontsize=SMALL)
    ax.text(14.6, 1.6, "(7 + 2 − 3) / 2 + 1 = 4", ha="center", va="center", fontsize=SMALL)
    return fig


POOLING_INPUT = np.array([[1, 3, 2, 0], [4, 6, 1, 1], [0, 2, 5, 7], [1, 1, 8, 2]])


def max_vs_average_pooling() -> Figure:
    fig = new_figure(2.5)
    ax = diagram_axes(fig, (-0.1, 13.0), (-0.1, 5.0))
    window_colours = ((BLUE, ORANGE), (GREEN, PURPLE))

    def cell(x: float, y: float, value: float, colour: str, bold: bool = False) -> None:
        ax.add_patch(Rectangle((x, y), 1, 1, fc=tint(colour, 0.3), ec="white", lw=2.5))
        weight = "bold" if bold else "normal"
        ax.text(x + 0.5, y + 0.5, f"{value:g}", ha="center", va="center", fontsize=TEXT, fontweight=weight)

    for r, row in enumerate(POOLING_INPUT):
        for c, value in enumerate(row):
            window = POOLING_INPUT[r // 2 * 2 : r // 2 * 2 + 2, c // 2 * 2 : c // 2 * 2 + 2]
            cell(c, 3 - r, value, window_colours[r // 2][c // 2], bold=value == window.max())
    ax.text(2, 4.5, "input", ha="center", va="center", fontsize=TEXT)
    ax.text(9.0, 4.5, "2×2 pooling, stride 2", ha="center", va="center", fontsize=TEXT)
    for left, title, pool in ((6.0, "max", np.max), (10.0, "average", np.mean)):
        for r in range(2):
            for c in range(2):
                cell(
                    left + c,
                    2 - r,
                    float(pool(POOLING_INPUT[2 * r : 2 * r + 2, 2 * c : 2 * c + 2])),
                    window_colours[r][c],
                )
        ax.text(left + 1, 3.5, title, ha="center", va="center", fontsize=TEXT)
    return fig


def receptive_field() -> Figure:
    fig = new_figure(2.9)
    ax = diagram_axes(fig, (-2.3, 11.2), (-1.2, 5.0))
    width, centre, spacing = 9, 4, 1.3
    rows = ("input", "conv 1", "conv 2", "conv 3")
    for level, name in enumerate(rows):
        y = level * spacing
        reach = len(rows) - 1 - level  # cells either side of the centre that the top unit depends on
        for c in range(width):
            seen = abs(c - centre) <= reach
            fill = tint(BLUE, 0.2 + 0.25 * level) if seen else "white"
            ax.add_patch(Rectangle((c + 0.1, y), 0.8, 0.8, fc=fill, ec=MUTED, lw=1))
        if level > 0:
            xs: list[float] = []
            ys: list[float] = []
            for c in range(centre - reach, centre + reach + 1):
                for child in (c - 1, c, c + 1):
                    xs += [c + 0.5, child + 0.5, math.nan]
                    ys += [y, y - spacing + 0.8, math.nan]
            ax.plot(xs, ys, color=MUTED, lw=0.9, zorder=0)
        ax.text(-0.2, y + 0.4, name, ha="right", va="center", fontsize=TEXT)
        if level < len(rows) - 1:
            ax.text(width + 0.2, y + 0.4, f"{2 * reach + 1}×{2 * reach + 1}", va="center", fontsize=TEXT)
    ax.text(width / 2, -0.7, "one conv 3 unit sees 7×7 input pixels", ha="center", va="center", fontsize=SMALL)
    return fig


# --- recurrent networks ---------------------------------------------------------------------------

GATE_SIZE = (1.8, 1.1)
CANDIDATE_SIZE = (2.5, 1.1)


def lstm_cell() -> Figure:
    fig = new_figure(3.2)
    ax = diagram_axes(fig, (-0.5, 12.9), (-0.8, 5.0))
    ax.add_patch(FancyBboxPatch((0.9, 0.3), 10.3, 4.25, boxstyle="round,pad=0,rounding_size=0.3", fc=PANEL, ec=MUTED))
    top, bus, gate_y = 4.0, 0.75, 2.0
    gate_top, gate_bottom = gate_y + GATE_SIZE[1] / 2, gate_y - GATE_SIZE[1] / 2
    forget, inp, candidate, output, out = 2.15, 4.15, 6.6, 9.0, 10.65
    add = (5.4, top)
    # The cell state: the forget gate scales it, then the gated candidate is added.
    wire(ax, [(-0.2, top), (forget - NODE_RADIUS, top)])
    node(ax, (forget, top), "×")
    wire(ax, [(forget + NODE_RADIUS, top), (add[0] - NODE_RADIUS, top)])
    node(ax, add, "+")
    wire(ax, [(add[0] + NODE_RADIUS, top), (12.5, top)])
    subscripted(ax, (-0.3, top + 0.3), "c", "t−1")
    subscripted(ax, (11.85, top + 0.3), "c", "t")
    # The previous hidden state and the input feed all four layers.
    wire(ax, [(-0.2, bus), (output, bus)], head=False)
    subscripted(ax, (-0.3, bus + 0.3), "h", "t−1")
    wire(ax, [(1.4, -0.7), (1.4, bus)], head=False)
    dot(ax, (1.4, bus))
    subscripted(ax, (1.6, -0.55), "x", "t")
    for x in (forget, inp, candidate, output):
        dot(ax, (x, bus))
        wire(ax, [(x, bus), (x, gate_bottom)])
    box(ax, (forget, gate_y), GATE_SIZE, "forget\nσ", face=GATE_FILL)
    box(ax, (inp, gate_y), GATE_SIZE, "input\nσ", face=GATE_FILL)
    box(ax, (candidate, gate_y), CANDIDATE_SIZE, "candidate\ntanh", face=CANDIDATE_FILL)
    box(ax, (output, gate_y), GATE_SIZE, "output\nσ", face=GATE_FILL)
    wire(ax, [(forget, gate_top), (forget, top - NODE_RADIUS)])
    # Input gate × candidate goes into the cell state.
    mix = (add[0], 3.2)
    wire(ax, [(inp, gate_top), (inp, mix[1]), (mix[0] - NODE_RADIUS, mix[1])])
    wire(ax, [(candidate, gate_top), (candidate, mix[1]), (mix[0] + NODE_RADIUS, mix[1])])
    node(ax, mix, "×")
    wire(ax, [(mix[0], mix[1] + NODE_RADIUS), (add[0], top - NODE_RADIUS)])
    # Output gate × tanh(new cell state) is the new hidden state.
    squash, gated = (out, 3.15), (out, gate_y)
    dot(ax, (out, top))
    wire(ax, [(out, top), (out, squash[1] + 0.25)])
    box(ax, squash, (1.1, 0.5), "tanh")
    wire(ax, [(out, squash[1] - 0.25), (out, gated[1] + NODE_RADIUS)])
    wire(ax, [(output + GATE_SIZE[0] / 2, gate_y), (out - NODE_RADIUS, gate_y)])
    node(ax, gated, "×")
    wire(ax, [(out + NODE_RADIUS, gate_y), (12.5, gate_y)])
    subscripted(ax, (11.85, gate_y + 0.3), "h", "t")
    return fig


def gru_cell() -> Figure:
    fig = new_figure(3.2)
    ax = diagram_axes(fig, (-0.5, 12.9), (-0.8, 5.0))
    ax.add_patch(FancyBboxPatch((0.8, 0.25), 10.4, 4.3, boxstyle="round,pad=0,rounding_size=0.3", fc=PANEL, ec=MUTED))
    top, bus, low, gate_y, branch = 4.0, 1.0, 0.55, 2.0, 3.2
    gate_top, gate_bottom = gate_y + GATE_SIZE[1] / 2, gate_y - GATE_SIZE[1] / 2
    update, reset, gated_reset, candidate, blend = 2.3, 4.35, 6.0, 8.0, 10.6
    # The state: the update gate z keeps z·h(t−1), and (1 − z)·candidate is added.
    wire(ax, [(-0.2, top), (update - NODE_RADIUS, top)])
    subscripted(ax, (-0.3, top + 0.3), "h", "t−1")
    node(ax, (update, top), "×")
    wire(ax, [(update + NODE_RADIUS, top), (blend - NODE_RADIUS, top)])
    node(ax, (blend, top), "+")
    wire(ax, [(blend + NODE_RADIUS, top), (12.5, top)])
    subscripted(ax, (11.85, top + 0.3), "h", "t")
    # The previous state and the input feed both gates; the candidate gets the input directly.
    dot(ax, (1.0, top))
    wire(ax, [(1.0, top), (1.0, bus), (reset, bus)], head=False)
    wire(ax, [(1.5, -0.7), (1.5, bus)], head=False)
    dot(ax, (1.5, bus))
    dot(ax, (1.5, low))
    subscripted(ax, (1.7, -0.55), "x", "t")
    wire(ax, [(1.5, low), (candidate, low), (candidate, gate_bottom)])
    for x in (update, reset):
        dot(ax, (x, bus))
        wire(ax, [(x, bus), (x, gate_bottom)])
    box(ax, (update, gate_y), GATE_SIZE, "update\nσ", face=GATE_FILL)
    box(ax, (reset, gate_y), GATE_SIZE, "reset\nσ", face=GATE_FILL)
    box(ax, (candidate, gate_y), CANDIDATE_SIZE, "candidate\ntanh", face=CANDIDATE_FILL)
    # Reset gate × previous state feeds the candidate.
    dot(ax, (gated_reset, top))
    wire(ax, [(gated_reset, top), (gated_reset, gate_y + NODE_RADIUS)])
    wire(ax, [(reset + GATE_SIZE[0] / 2, gate_y), (gated_reset - NODE_RADIUS, gate_y)])
    node(ax, (gated_reset, gate_y), "×")
    wire(ax, [(gated_reset + NODE_RADIUS, gate_y), (candidate - CANDIDATE_SIZE[0] / 2, gate_y)])
    # The update gate's two uses: keep z of the old state, let 1 − z of the candidate in.
    wire(ax, [(update, gate_top), (update, top - NODE_RADIUS)])
    dot(ax, (update, branch))
    gap = 0.14  # the z path hops over the h path where they cross
    wire(ax, [(update, branch), (gated_reset - gap, branch)], head=False)
    one_minus = (9.5, branch)
    wire(ax, [(gated_reset + gap, branch), (one_minus[0] - 0.35, branch)])
    box(ax, one_minus, (0.7, 0.5), "1−")
    mix = (blend, branch)
    wire(ax, [(one_minus[0] + 0.35, branch), (mix[0] - NODE_RADIUS, branch)])
    wire(ax, [(candidate + CANDIDATE_SIZE[0] / 2, gate_y), (blend, gate_y), (blend, mix[1] - NODE_RADIUS)])
    node(ax, mix, "×")
    wire(ax, [(blend, mix[1] + NODE_RADIUS), (blend, top - NODE_RADIUS)])
    return fig


def unrolled_rnn() -> Figure:
    fig = new_figure(2.6)
    ax = diagram_axes(fig, (-0.3, 14.4), (-1.1, 4.7))
    size = (1.4, 1.0)

    def step(x: float, t: str) -> None:
        box(ax, (x, 2.1), size, "RNN", face=GATE_FILL)
        wire(ax, [(x, 0.7), (x, 1.6)])
        wire(ax, [(x, 2.6), (x, 3.6)])
        subscripted(ax, (x - 0.25, 0.1), "x", t)
        subscripted(ax, (x - 0.25, 3.85), "h", t)

    # Rolled: one cell whose state comes back into it at the next step.
    step(1.0, "t")
    wire(ax, [(1.7, 2.45), (2.45, 2.45), (2.45, 1.75), (1.7, 1.75)])
    ax.text(3.15, 2.1, "=", ha="center", va="center", fontsize=26)
    # Unrolled: one copy per time step, every copy with the same weights.
    cells = (5.6, 8.2, 10.8, 13.4)
    wire(ax, [(3.8, 2.1), (cells[0] - size[0] / 2, 2.1)])
    subscripted(ax, (3.85, 2.3), "h", "0")
    for t, x in enumerate(cells, start=1):
        step(x, str(t))
        if t > 1:
            wire(ax, [(cells[t - 2] + size[0] / 2, 2.1), (x - size[0] / 2, 2.1)])
    ax.text(9.5, -0.7, "same weights at every step", ha="center", va="center", fontsize=SMALL)
    return fig


# --- training and regularisation ------------------------------------------------------------------

TRAINING_STYLE: dict[str, Any] = {"color": BLUE, "label": "training"}
VALIDATION_STYLE: dict[str, Any] = {"color": VERMILLION, "linestyle": (0, (5, 2)), "label": "validation"}


def fitting_curves() -> Figure:
    fig = new_figure(2.7)
    axes = fig.subplots(1, 3, sharey=True)
    epoch = np.linspace(0, 1, 60)
    cases = {
        "underfitting": (0.72 + 0.2 * np.exp(-6 * epoch), 0.77 + 0.2 * np.exp(-6 * epoch)),
        "good fit": (0.12 + 0.85 * np.exp(-6 * epoch), 0.2 + 0.8 * np.exp(-6 * epoch)),
        "overfitting": (0.03 + 0.9 * np.exp(-5 * epoch), 0.18 + 0.8 * np.exp(-7 * epoch) + 0.55 * epoch**2),
    }
    for ax, (title, (training, validation)) in zip(axes, cases.items(), strict=True):
        ax.plot(epoch, training, **TRAINING_STYLE)
        ax.plot(epoch, validation, **VALIDATION_STYLE)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.05)
        schematic(ax)
    axes[0].set_ylabel("loss")
    fig.legend(handles=axes[0].lines, loc="outside lower center", ncols=2, handlelength=2.4)
    return fig


def _early_stopping_epochs(monitored: np.ndarray, patience: int) -> tuple[int, int]:
    """Indices of the best epoch and of the epoch at which Keras's EarlyStopping stops."""
    best, wait = 0, 0
    for index in range(1, monitored.size):
        if monitored[index] < monitored[best]:
            best, wait = index, 0
        else:
            wait += 1
            if wait >= patience:
                return best, index
    return best, monitored.size - 1


def early_stopping() -> Figure:
    fig = new_figure(2.9)
    ax = fig.add_subplot()
    epochs = np.arange(1, 41)
    noise = np.random.default_rng(7).normal(0, 0.012, epochs.size)
    training = 0.08 + 0.9 * np.exp(-epochs / 7)
    validation = 0.3 + 0.75 * np.exp(-epochs / 5) + 0.0003 * (epochs - 14).clip(0) ** 2 + noise
    patience = 10
    best, stop = _early_stopping_epochs(validation, patience)
    ax.axvspan(epochs[best], epochs[stop], color=tint(ORANGE, 0.3), lw=0)
    ax.plot(epochs, training, **TRAINING_STYLE)
    ax.plot(epochs, validation, **VALIDATION_STYLE)
    ax.plot(epochs[best], validation[best], "o", color=VERMILLION, ms=9, mec=INK, zorder=5)
    ax.axvline(epochs[stop], color=INK, lw=1.6)
    ax.annotate(
        "best epoch",
        (epochs[best], validation[best]),
        xytext=(epochs[best] - 7, 0.72),
        ha="center",
        va="center",
        arrowprops={"arrowstyle": "-|>", "color": INK, "lw": 1.2, "shrinkB": 5},
    )
    ax.annotate(
        "",
        (epochs[stop], 0.58),
        (epochs[best], 0.58),
        arrowprops={
            "arrowstyle": "<|-|>,head_length=0.5,head_width=0.25",
            "color": INK,
            "lw": 1.2,
            "shrinkA": 0,
            "shrinkB": 0,
        },
    )
    ax.text((epochs[best] + epochs[stop]) / 2, 0.68, f"patience {patience}", ha="center", va="center", fontsize=SMALL)
    ax.text(epochs[stop] + 0.7, 0.95, "stop", va="center")
    ax.set_xlim(0, 40.5)
    ax.set_ylim(0, 1.05)
    ax.set_xticks([0, 10, 20, 30, 40])
    ax.set_yticks([])
    ax.set_xlabel("epoch", labelpad=0)
    ax.set_ylabel("loss")
    fig.legend(handles=ax.lines[:2], loc="outside upper center", ncols=2, handlelength=2.4)
    return fig


def learning_rates() -> Figure:
    fig = new_figure(3.7)
    axes = fig.subplots(2, 3)
    cases = (("too low", 0.03, 1.8, BLUE), ("well chosen", 0.3, 1.8, GREEN), ("too high", 1.06, 0.7, VERMILLION))
    bowl = np.linspace(-2.1, 2.1, 85)
    for column, (title, rate, start, colour) in enumerate(cases):
        path = [start]
        for _ in range(8):
            path.append(path[-1] - rate * 2 * path[-1])  # a gradient-descent step on L(w) = w²
        weights = np.array(path)
        on_bowl, over_time = axes[0][column], axes[1][column]
        on_bowl.plot(bowl, bowl**2, color=LIGHT, lw=2.4)
        on_bowl.plot(weights, weights**2, color=colour, lw=1.4, marker="o", ms=5)
        on_bowl.set_title(title)
        on_bowl.set_xlim(-2.2, 2.2)
        on_bowl.set_xlabel("weight", labelpad=2)
        over_time.plot(np.arange(weights.size), weights**2, color=colour, marker="o", ms=4, lw=2)
        over_time.set_xlabel("step", labelpad=2)
        for ax in (on_bowl, over_time):
            ax.set_ylim(-0.3, 4.6)
            schematic(ax)
    axes[0][0].set_ylabel("loss")
    axes[1][0].set_ylabel("loss")
    return fig


def dropout() -> Figure:
    fig = new_figure(2.6)
    sizes, spacing = (3, 4, 4, 2), 1.5
    dropped = {(1, 1), (1, 3), (2, 0), (2, 2)}  # (layer, unit): what one step at rate 0.5 might draw
    for ax, title, drops in zip(
        fig.subplots(1, 2), ("full network", "one training step"), (set(), dropped), strict=True
    ):
        ax.set_title(title)
        ax.set_xlim(-0.45, (len(sizes) - 1) * spacing + 0.45)
        ax.set_ylim(-2.0, 2.0)
        ax.set_aspect("equal")
        ax.set_axis_off()
        centres = [
            [(layer * spacing, (size - 1) / 2 - unit) for unit in range(size)] for layer, size in enumerate(sizes)
        ]
        xs: list[float] = []
        ys: list[float] = []
        for layer in range(len(sizes) - 1):
            for a, start in enumerate(centres[layer]):
                for b, end in enumerate(centres[layer + 1]):
                    if (layer, a) not in drops and (layer + 1, b) not in drops:
                        xs += [start[0], end[0], math.nan]
                        ys += [start[1], end[1], math.nan]
        ax.plot(xs, ys, color=MUTED, lw=1, zorder=1)
        for layer, column in enumerate(centres):
            for unit, centre in enumerate(column):
                if (layer, unit) in drops:
                    ax.add_patch(Circle(centre, 0.32, fc="white", ec=MUTED, lw=1.4, linestyle=(0, (2, 1.5)), zorder=2))
                    ax.text(*centre, "×", ha="center", va="center_baseline", fontsize=20, color=VERMILLION, zorder=3)
                else:
                    ax.add_patch(Circle(centre, 0.32, fc=tint(BLUE, 0.45), ec=BLUE, lw=1.6, zorder=2))
    return fig


# --- autoencoders and transfer learning -----------------------------------------------------------


def autoencoder() -> Figure:
    fig = new_figure(2.8)
    ax = diagram_axes(fig, (-1.5, 13.7), (-1.5, 5.0))
    layers = (
        (0, 4.0, 784, BLUE),
        (3, 2.4, 128, BLUE),
        (6, 1.0, 32, VERMILLION),
        (9, 2.4, 128, GREEN),
        (12, 4.0, 784, GREEN),
    )
    middle, width = 1.8, 0.7
    for (x0, h0, _, _), (x1, h1, _, _) in itertools.pairwise(layers):
        corners = [(x0 + width / 2, middle + h0 / 2), (x1 - width / 2, middle + h1 / 2)]
        corners += [(x1 - width / 2, middle - h1 / 2), (x0 + width / 2, middle - h0 / 2)]
        ax.add_patch(Polygon(corners, fc=PANEL, ec="none", zorder=0))
    for x, height, units, colour in layers:
        ax.add_patch(
            Rectangle((x - width / 2, middle - height / 2), width, height, fc=tint(colour, 0.4), ec=colour, lw=1.8)
        )
        ax.text(x, middle - height / 2 - 0.45, str(units), ha="center", va="center", fontsize=SMALL)
    ax.text(1.5, 4.45, "encoder", ha="center", va="center", color=BLUE, fontweight="bold")
    ax.text(10.5, 4.45, "decoder", ha="center", va="center", color=GREEN, fontweight="bold")
    ax.text(6.0, 3.0, "code", ha="center", va="center", color=VERMILLION, fontweight="bold")
    ax.text(-0.6, middle, "x", ha="right", va="center", fontsize=TEXT + 2, fontstyle="italic")
    ax.text(12.6, middle, "≈ x", ha="left", va="center", fontsize=TEXT + 2, fontstyle="italic")
    ax.text(6.0, -1.1, "trained to reconstruct its input", ha="center", va="center", fontsize=SMALL)
    return fig


def transfer_learning() -> Figure:
    fig = new_figure(2.9)
    ax = diagram_axes(fig, (-0.2, 10.9), (-1.0, 4.7))
    size, step, head_width = 1.1, 1.55, 2.6
    rows = (("feature extraction", 2.9, 0), ("fine-tuning (low learning rate)", 0.35, 2))

    def block(x: float, y: float, width: float, trainable: bool, colour: str = BLUE) -> None:
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                width,
                size,
                boxstyle="round,pad=0,rounding_size=0.12",
                fc=tint(colour, 0.4) if trainable else PANEL,
                ec=colour if trainable else MUTED,
                hatch="" if trainable else "///",
                lw=1.6,
            )
        )

    for title, y, unfrozen in rows:
        ax.text(-0.1, y + size + 0.35, title, va="center", fontweight="bold")
        for index in range(5):
            block(index * step, y, size, trainable=index >= 5 - unfrozen)
            arrow(ax, (index * step + size, y + size / 2), ((index + 1) * step, y + size / 2))
        block(5 * step, y, head_width, trainable=True, colour=GREEN)
        ax.text(5 * step + head_width / 2, y + size / 2, "new head", ha="center", va="center", fontsize=SMALL)
    base_right = 4 * step + size
    ax.plot([0, 0, base_right, base_right], [0.05, -0.15, -0.15, 0.05], color=MUTED, lw=1.2)
    ax.text(base_right / 2, -0.6, "pretrained base", ha="center", va="center", fontsize=SMALL)
    legend = fig.legend(
        handles=[
            Rectangle((0, 0), 1, 1, fc=PANEL, ec=MUTED, hatch="///", label="frozen"),
            Rectangle((0, 0), 1, 1, fc=tint(BLUE, 0.4), ec=BLUE, label="trained"),
        ],
        loc="upper right",
        ncols=2,
        handlelength=1.4,
        columnspacing=1,
        borderaxespad=0.2,
    )
    legend.set_in_layout(False)
    return fig


# --- attention -------------------------------------------------------------------------------------

TOKENS = ("the", "cat", "sat", "on", "the", "mat")
# Hand-set query·key scores: nouns attend to their article, the verb to its subject, "on" to "mat".
ATTENTION_SCORES = np.array(
    [
        [2.0, 1.8, 0.2, 0.0, 0.3, 0.4],
        [1.6, 2.4, 1.2, 0.0, 0.0, 0.3],
        [0.2, 2.6, 1.4, 0.9, 0.0, 0.5],
        [0.0, 0.3, 0.8, 1.4, 0.6, 2.0],
        [0.2, 0.1, 0.0, 0.6, 1.6, 2.2],
        [0.1, 0.6, 0.3, 1.6, 1.4, 2.4],
    ]
)


def attention_weights() -> Figure:
    fig = new_figure(3.3)
    ax = fig.add_subplot()
    weights = np.exp(ATTENTION_SCORES)
    weights /= weights.sum(axis=1, keepdims=True)  # softmax over the keys
    strongest = weights.max()
    for q, row in enumerate(weights):
        for k, weight in enumerate(row):
            # Light to middle blue only, so dark numbers stay readable on every cell.
            ax.add_patch(Rectangle((k, q), 1, 1, fc=tint(BLUE, 0.04 + 0.6 * weight / strongest), ec="white", lw=2))
            ax.text(k + 0.5, q + 0.5, f"{weight:.2f}", ha="center", va="center", fontsize=SMALL + 1)
    ax.set_xlim(0, len(TOKENS))
    ax.set_ylim(len(TOKENS), 0)
    ax.set_xticks(np.arange(len(TOKENS)) + 0.5, TOKENS)
    ax.set_yticks(np.arange(len(TOKENS)) + 0.5, TOKENS)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.supxlabel("softmax over the keys: every row sums to 1 (cells rounded)", fontsize=SMALL)
    return fig


# --- large language models -------------------------------------------------------------------------


def flash_attention_tiling() -> Figure:
    fig = new_figure(3.4)
    ax = diagram_axes(fig, (-0.3, 12.9), (-1.8, 5.6))
    blocks, row, col, left = 4, 1, 2, 1.4  # the current Q block (second) and K/V block (third)
    query, key_value = tint(BLUE, 0.5), tint(ORANGE, 0.5)
    for index in range(blocks):
        y = blocks - 1 - index
        ax.add_patch(Rectangle((0.05, y + 0.05), 0.9, 0.9, fc=query if index == row else tint(BLUE, 0.15), ec=MUTED))
        x = left + index
        ax.add_patch(
            Rectangle((x + 0.05, 4.35), 0.9, 0.9, fc=key_value if index == col else tint(ORANGE, 0.15), ec=MUTED)
        )
    ax.text(0.5, 4.8, "Q", ha="center", va="center", fontweight="bold")
    ax.text(left + blocks + 0.15, 4.8, "K, V", ha="left", va="center", fontweight="bold")
    # The n × n scores: only a dashed outline, since no more than one tile of them exists at a time.
    tile_y = blocks - 1 - row
    for c in range(col):
        ax.add_patch(Rectangle((left + c, tile_y), 1, 1, fc=tint(GREEN, 0.35), ec="none"))
    ax.add_patch(Rectangle((left + col, tile_y), 1, 1, fc=tint(VERMILLION, 0.5), ec="none"))
    xs: list[float] = []
    ys: list[float] = []
    for i in range(blocks + 1):
        xs += [left + i, left + i, math.nan, left, left + blocks, math.nan]
        ys += [0, blocks, math.nan, i, i, math.nan]
    ax.plot(xs, ys, color=MUTED, lw=1, linestyle=(0, (3, 2)), solid_capstyle="butt")
    arrow(ax, (left + blocks + 0.15, tile_y + 0.5), (6.65, tile_y + 0.5))
    # On chip: one block of each input, one tile of scores, and the running softmax state.
    ax.add_patch(FancyBboxPatch((6.8, -0.2), 6.0, 5.7, boxstyle="round,pad=0,rounding_size=0.3", fc=PANEL, ec=MUTED))
    ax.text(9.8, 5.0, "SRAM (on chip)", ha="center", va="center", fontweight="bold")
    contents = (
        (4.0, 0.8, "Q block 2", query),
        (3.0, 0.8, "K, V block 3", key_value),
        (2.0, 0.8, "score tile Q2·K3", tint(VERMILLION, 0.5)),
        (0.65, 1.3, "output block 2 and\nrunning max, sum", tint(GREEN, 0.35)),
    )
    for centre_y, height, text, face in contents:
        box(ax, (9.8, centre_y), (5.4, height), text, face=face, edge=MUTED)
    ax.text(
        6.2,
        -1.15,
        "HBM holds Q, K, V and O, never the n × n\nscores: each tile is used, then dropped",
        ha="center",
        va="center",
        fontsize=SMALL,
    )
    return fig


KV_LAYERS, KV_HEAD_SIZE, KV_VALUE_BYTES = 32, 128, 2  # a Llama-2-7B-shaped model in 16-bit floats
MODEL_WEIGHT_GIB = 7e9 * 2 / 2**30  # 7 billion 16-bit parameters


def kv_cache_gib(kv_heads: int, tokens: np.ndarray) -> np.ndarray:
    """Keys and values of every layer: 2 · L · n_kv · d_head · bytes per token, in GiB."""
    return 2 * KV_LAYERS * kv_heads * KV_HEAD_SIZE * KV_VALUE_BYTES * tokens / 2**30


def kv_cache_growth() -> Figure:
    fig = new_figure(3.0)
    ax = fig.add_subplot()
    tokens = np.array([0, 32_768])
    ax.axhline(MODEL_WEIGHT_GIB, color=MUTED, lw=1.6, linestyle=(0, (1, 1.5)))
    ax.text(0.5, MODEL_WEIGHT_GIB + 0.45, "the 7B weights themselves", fontsize=SMALL, color=MUTED)
    for heads, name, colour, style in (
        (32, "MHA, 32 KV heads", BLUE, "-"),
        (8, "GQA, 8 KV heads", VERMILLION, (0, (5, 2))),
    ):
        cache = kv_cache_gib(heads, tokens)
        ax.plot(tokens / 1024, cache, color=colour, linestyle=style, label=name)
        ax.text(32.8, cache[-1], f"{cache[-1]:g} GiB", va="center", fontsize=SMALL)
    ax.set_xlim(0, 32.5)
    ax.set_ylim(0, 17.5)
    ax.set_xticks([0, 8, 16, 24, 32], ["0", "8k", "16k", "24k", "32k"])
    ax.set_yticks([0, 4, 8, 12, 16])
    ax.set_xlabel("context length (tokens)", labelpad=2)
    ax.set_ylabel("KV cache (GiB)")
    ax.set_title("32 layers, head size 128, 16-bit values, batch 1", fontsize=SMALL)
    fig.legend(handles=ax.lines[1:], loc="outside lower center", ncols=2, handlelength=2.2)
    return fig


MOE_GATES = (0.05, 0.08, 0.42, 0.06, 0.04, 0.23, 0.07, 0.05)  # the router's softmax over 8 experts


def moe_routing() -> Figure:
    fig = new_figure(3.4)
    ax = diagram_axes(fig, (-0.3, 13.5), (-1.2, 6.2))
    chosen = sorted(range(len(MOE_GATES)), key=lambda expert: -MOE_GATES[expert])[:2]
    total = sum(MOE_GATES[expert] for expert in chosen)
    middle, fan, expert_x, expert_size, add_x = 2.8, 5.1, 7.7, (2.4, 0.6), 11.2
    box(ax, (0.45, middle), (0.8, 0.8), "x", fontsize=TEXT)
    wire(ax, [(0.85, middle), (1.6, middle)])
    box(ax, (2.6, middle), (2.0, 1.3), "router\nsoftmax", face=GATE_FILL)
    for expert, gate in enumerate(MOE_GATES):
        y = 5.6 - 0.8 * expert
        active = expert in chosen
        start, bend, end = (3.6, middle), (fan, y), (expert_x - expert_size[0] / 2, y)
        if active:
            wire(ax, [start, bend, end])
        else:
            ax.plot(*zip(start, bend, end, strict=True), color=LIGHT, lw=1.4, zorder=1)
        ax.text(
            (fan + end[0]) / 2,
            y + 0.06,
            f"{gate:.2f}",
            ha="center",
            va="bottom",
            fontsize=SMALL,
            color=INK if active else MUTED,
            fontweight="bold" if active else "normal",
        )
        face, edge = (tint(BLUE, 0.45), BLUE) if active else ("white", LIGHT)
        box(ax, (expert_x, y), expert_size, "", face=face, edge=edge)
        ax.text(
            expert_x,
            y,
            f"expert {expert + 1}",
            ha="center",
            va="center",
            fontsize=SMALL,
            zorder=4,
            color=INK if active else MUTED,
        )
        if active:
            weight = gate / total
            towards = middle + (NODE_RADIUS if y > middle else -NODE_RADIUS)
            wire(ax, [(expert_x + expert_size[0] / 2, y), (add_x, y), (add_x, towards)])
            ax.text(
                (expert_x + expert_size[0] / 2 + add_x) / 2,
                y + 0.06,
                f"× {weight:.2f}",
                ha="center",
                va="bottom",
                fontsize=SMALL,
                fontweight="bold",
            )
    node(ax, (add_x, middle), "+")
    wire(ax, [(add_x + NODE_RADIUS, middle), (12.7, middle)])
    ax.text(12.85, middle, "y", ha="left", va="center", fontsize=TEXT, fontstyle="italic")
    ax.text(6.6, -0.85, "top 2 of 8: only two expert FFNs run for this token", ha="center", va="center", fontsize=SMALL)
    return fig


SAMPLING_LOGITS = np.array([3.0, 2.2, 1.6, 1.1, 0.7, 0.3, 0.0, -0.4, -0.8, -1.2])  # sorted, most likely first
TOP_P = 0.9


def softmax_at(logits: np.ndarray, temperature: float) -> np.ndarray:
    scaled = np.exp((logits - logits.max()) / temperature)
    return np.asarray(scaled / scaled.sum())


def nucleus_size(probs: np.ndarray, top_p: float) -> int:
    """How many of the most likely tokens top-p keeps: the fewest whose probabilities add up to `top_p`."""
    return int(np.searchsorted(np.cumsum(np.sort(probs)[::-1]), top_p) + 1)


def sampling_temperature_top_p() -> Figure:
    fig = new_figure(2.9)
    axes = fig.subplots(1, 3, sharey=True)
    ranks = np.arange(SAMPLING_LOGITS.size)
    for ax, temperature in zip(axes, (0.5, 1.0, 2.0), strict=True):
        probs = softmax_at(SAMPLING_LOGITS, temperature)
        kept = nucleus_size(probs, TOP_P)
        ax.bar(
            ranks[:kept],
            probs[:kept],
            width=0.8,
            color=tint(BLUE, 0.6),
            edgecolor=BLUE,
            lw=1.2,
            label=f"kept by top-p {TOP_P:g}",
        )
        ax.bar(ranks[kept:], probs[kept:], width=0.8, color="white", edgecolor=MUTED, lw=1.2, hatch="////", label="cut")
        ax.set_title(f"T = {temperature:g}")
        ax.set_xlabel(f"{kept} of {ranks.size} kept", labelpad=3)
        ax.set_xticks([])
        ax.set_xlim(-0.7, ranks.size - 0.3)
    axes[0].set_ylim(0, 0.85)
    axes[0].set_yticks([0, 0.4, 0.8], ["0", "0.4", "0.8"])
    axes[0].set_ylabel("probability")
    fig.legend(handles=axes[0].containers, loc="outside lower center", ncols=2, handlelength=1.4)
    return fig


# --- training at scale ------------------------------------------------------------------------------


def parallelism_layouts() -> Figure:
    fig = new_figure(4.4)
    ax = diagram_axes(fig, (-0.1, 13.05), (-0.1, 8.95))
    devices, layers, step, width = 4, 4, 3.3, 2.9
    held: dict[str, Any] = {"fc": tint(BLUE, 0.55), "ec": BLUE, "lw": 1.1}
    idle: dict[str, Any] = {"fc": "white", "ec": LIGHT, "lw": 1.1}
    rows = (
        ("data", "all layers; own 1/4 of the batch"),
        ("tensor", "1/4 of every layer; whole batch"),
        ("pipeline", "one layer each; batch flows on"),
    )
    frames: list[tuple[float, float, float, float]] = []
    bars: dict[bool, list[tuple[float, float, float, float]]] = {True: [], False: []}
    for index, (name, note) in enumerate(rows):
        top = 8.85 - 2.95 * index
        ax.text(0, top - 0.2, name, va="center", fontweight="bold")
        ax.text(devices * step - 0.4, top - 0.2, note, ha="right", va="center", fontsize=SMALL)
        for device in range(devices):
            x = device * step
            frames.append((x, top - 2.7, width, 2.2))
            ax.text(x + width / 2, top - 2.43, f"GPU {device + 1}", ha="center", va="center", fontsize=SMALL)
            for layer in range(layers):
                bar = (x + 0.3, top - 1.0 - 0.37 * layer, width - 0.6, 0.26)
                if name == "tensor":  # every layer's weight matrix split four ways: this device's quarter
                    piece = bar[2] / devices
                    bars[False] += [(bar[0] + part * piece, bar[1], piece, bar[3]) for part in range(devices)]
                    bars[True].append((bar[0] + device * piece, bar[1], piece, bar[3]))
                else:
                    bars[name == "data" or layer == device].append(bar)
            if name == "pipeline" and device < devices - 1:
                arrow(ax, (x + width + 0.02, top - 1.6), (x + step - 0.02, top - 1.6))
    rectangles(ax, frames, fc=PANEL, ec=MUTED, lw=1.2)
    rectangles(ax, bars[False], **idle)
    rectangles(ax, bars[True], **held)
    fig.legend(
        handles=[
            Rectangle((0, 0), 1, 1, **held, label="weights held"),
            Rectangle((0, 0), 1, 1, **idle, label="not held"),
        ],
        loc="outside lower center",
        ncols=2,
        handlelength=1.4,
    )
    return fig


CHECKPOINT_LAYERS, CHECKPOINT_EVERY = 12, 4


def memory_trace(layers: int, every: int | None) -> tuple[list[int], list[bool]]:
    """Layer activations held after each step of one forward and backward pass, and which steps recompute.

    Without checkpoints every layer's output is kept until its backward step. With a checkpoint every
    `every` layers only those outputs are kept (plus the one being computed); the backward pass recomputes
    each segment from the checkpoint before it, then frees it layer by layer.
    """
    held: list[int] = []
    recompute: list[bool] = []
    if every is None:
        held += list(range(1, layers + 1)) + list(range(layers - 1, -1, -1))
        return held, [False] * len(held)
    for layer in range(1, layers + 1):
        held.append(layer // every + (layer % every != 0))
        recompute.append(False)
    stored = layers // every
    for segment_end in range(layers, 0, -every):
        for _ in range(every - 1):  # recompute the segment's inner layers
            stored += 1
            held.append(stored)
            recompute.append(True)
        for _ in range(every):  # backward through the segment, freeing as we go
            stored -= 1
            held.append(stored)
            recompute.append(False)
        assert segment_end > 0
    return held, recompute


def activation_checkpointing() -> Figure:
    fig = new_figure(4.3)
    strip, plot = fig.subplots(2, 1, height_ratios=(1, 2.8))
    strip.set_xlim(-0.1, CHECKPOINT_LAYERS + 0.1)
    strip.set_ylim(-0.3, 1.0)
    strip.set_aspect("equal")
    strip.set_axis_off()
    for layer in range(1, CHECKPOINT_LAYERS + 1):
        kept = layer % CHECKPOINT_EVERY == 0
        strip.add_patch(
            Rectangle(
                (layer - 0.9, 0),
                0.8,
                0.8,
                fc=tint(BLUE, 0.6) if kept else "white",
                ec=BLUE if kept else MUTED,
                lw=1.6,
                linestyle="-" if kept else (0, (2, 1.5)),
            )
        )
    strip.text(
        CHECKPOINT_LAYERS / 2,
        -0.25,
        "every 4th layer's output kept; the rest recomputed in backward",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    plain, _ = memory_trace(CHECKPOINT_LAYERS, None)
    checkpointed, recompute = memory_trace(CHECKPOINT_LAYERS, CHECKPOINT_EVERY)
    for index, again in enumerate(recompute):
        if again:
            plot.axvspan(index + 0.5, index + 1.5, color=tint(ORANGE, 0.3), lw=0)
    plot.step(np.arange(1, len(plain) + 1), plain, where="mid", color=BLUE, label="keep all")
    plot.step(
        np.arange(1, len(checkpointed) + 1),
        checkpointed,
        where="mid",
        color=VERMILLION,
        linestyle=(0, (5, 2)),
        label="checkpoints",
    )
    plot.axvline(CHECKPOINT_LAYERS + 0.5, color=MUTED, lw=1.2)
    plot.text(CHECKPOINT_LAYERS / 2 + 0.5, 13.2, "forward", ha="center", va="center", fontsize=SMALL)
    plot.text(CHECKPOINT_LAYERS + 2, 13.2, "backward", ha="left", va="center", fontsize=SMALL)
    plot.set_xlim(0.5, len(checkpointed) + 0.5)
    plot.set_ylim(0, 14)
    plot.set_yticks([0, 6, 12])
    plot.set_xticks([])
    plot.set_xlabel("time (one step per layer)", labelpad=3)
    plot.set_ylabel("activations held")
    shading = Rectangle((0, 0), 1, 1, fc=tint(ORANGE, 0.3), ec="none", label="recompute")
    fig.legend(
        handles=[*plot.lines[:2], shading], loc="outside lower center", ncols=3, handlelength=2.0, columnspacing=1.0
    )
    return fig


# --- keras in practice ------------------------------------------------------------------------------

CAM_PIXELS, CAM_CELLS = 56, 7


def grad_cam_maps() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic Grad-CAM: the 7 × 7 map and its bilinear upsampling to the 56 × 56 input.

    Two made-up feature maps of the last conv layer, one firing on the disc (the class) and one on the
    square (a distractor), weighted by made-up pooled gradients +1 and −0.5; ReLU keeps the positive evidence.
    """
    centres = np.arange(CAM_PIXELS) + 0.5
    x, y = np.meshgrid(centres, centres)
    disc = ((x - 37) ** 2 + (y - 19) ** 2 <= 11**2) * 1.0
    square = ((abs(x - 17) <= 8) & (abs(y - 38) <= 8)) * 1.0
    side = CAM_PIXELS // CAM_CELLS

    def pooled(mask: np.ndarray) -> np.ndarray:
        return np.asarray(mask.reshape(CAM_CELLS, side, CAM_CELLS, side).mean(axis=(1, 3)))

    coarse = np.maximum(1.0 * pooled(disc) - 0.5 * pooled(square), 0)
    coarse /= coarse.max()
    cell_centres = (np.arange(CAM_CELLS) + 0.5) * side
    rows = np.array([np.interp(centres, cell_centres, row) for row in coarse])
    fine = np.array([np.interp(centres, cell_centres, column) for column in rows.T]).T
    return coarse, fine


def _cam_scene(ax: Axes) -> None:
    ax.add_patch(Rectangle((0, 0), CAM_PIXELS, CAM_PIXELS, fc=PANEL, ec=MUTED, lw=1))
    ax.add_patch(Circle((37, 19), 11, fc=tint(BLUE, 0.55), ec=BLUE, lw=1.4))
    ax.add_patch(Rectangle((9, 30), 16, 16, fc=tint(GREEN, 0.55), ec=GREEN, lw=1.4))


def grad_cam_heatmap() -> Figure:
    fig = new_figure(2.5)
    axes = fig.subplots(1, 3)
    coarse, fine = grad_cam_maps()
    side = CAM_PIXELS // CAM_CELLS
    for ax, title in zip(axes, ("input: disc", "Grad-CAM 7 × 7", "upsampled"), strict=True):
        ax.set_xlim(-0.5, CAM_PIXELS + 0.5)
        ax.set_ylim(CAM_PIXELS + 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title)
    _cam_scene(axes[0])
    shades: dict[str, list[tuple[float, float, float, float]]] = {}
    for (r, c), value in np.ndenumerate(coarse):
        shades.setdefault(tint(VERMILLION, 0.04 + 0.9 * value), []).append((c * side, r * side, side, side))
    for face, cells in shades.items():
        rectangles(axes[1], cells, fc=face, ec="white", lw=1)
    axes[1].add_patch(Rectangle((0, 0), CAM_PIXELS, CAM_PIXELS, fill=False, ec=MUTED, lw=1))
    _cam_scene(axes[2])
    centres = np.arange(CAM_PIXELS) + 0.5
    levels = [0.15, 0.45, 0.75, 1.01]
    axes[2].contourf(
        centres,
        centres,
        fine,
        levels=levels,
        colors=[tint(VERMILLION, 0.3 + 0.3 * i) for i in range(len(levels) - 1)],
        alpha=0.7,
    )
    fig.supxlabel("synthetic image; the square is a distractor", fontsize=SMALL)
    return fig


def imbalanced_curves() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Illustrative validation accuracy and PR-AUC per epoch on a 95/5 problem (not a training run)."""
    epochs = np.arange(0, 31)
    noise = np.random.default_rng(3).normal(0, 1, (2, epochs.size))
    accuracy = 0.95 + 0.012 * (1 - np.exp(-epochs / 8)) + 0.0015 * noise[0]
    pr_auc = 0.05 + 0.65 / (1 + np.exp(-(epochs - 10) / 3)) + 0.012 * noise[1]
    accuracy[0], pr_auc[0] = 0.95, 0.05  # before training: every score the same
    return epochs, accuracy, pr_auc


def imbalanced_learning_curves() -> Figure:
    fig = new_figure(2.9)
    ax = fig.add_subplot()
    epochs, accuracy, pr_auc = imbalanced_curves()
    ax.axhline(0.95, color=MUTED, lw=1.4, linestyle=(0, (1, 1.5)))
    ax.axhline(0.05, color=MUTED, lw=1.4, linestyle=(0, (1, 1.5)))
    ax.text(30, 0.885, "always predict the majority: 0.95", ha="right", va="center", fontsize=SMALL, color=MUTED)
    ax.text(30, 0.115, "random ranking: PR-AUC 0.05", ha="right", va="center", fontsize=SMALL, color=MUTED)
    ax.plot(epochs, accuracy, color=BLUE, label="accuracy")
    ax.plot(epochs, pr_auc, color=VERMILLION, linestyle=(0, (5, 2)), label="PR-AUC")
    ax.set_xlim(0, 30.5)
    ax.set_ylim(0, 1.02)
    ax.set_xticks([0, 10, 20, 30])
    ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"])
    ax.set_xlabel("epoch (illustrative curves)", labelpad=2)
    ax.set_ylabel("validation metric")
    ax.legend(loc="upper left", bbox_to_anchor=(0.02, 0.86), handlelength=2.2)
    return fig


# --- registry and rendering -------------------------------------------------------------------------

FIGURES: dict[str, Callable[[], Figure]] = {
    "activations/figures/activation-functions.svg": activation_functions,
    "training/figures/activation-derivatives.svg": activation_derivatives,
    "cnn/figures/conv-stride-padding.svg": conv_stride_padding,
    "cnn/figures/max-vs-average-pooling.svg": max_vs_average_pooling,
    "cnn/figures/receptive-field.svg": receptive_field,
    "rnn/figures/lstm-cell.svg": lstm_cell,
    "rnn/figures/gru-cell.svg": gru_cell,
    "rnn/figures/unrolled-rnn.svg": unrolled_rnn,
    "regularization/figures/fitting-curves.svg": fitting_curves,
    "regularization/figures/early-stopping.svg": early_stopping,
    "training/figures/learning-rates.svg": learning_rates,
    "regularization/figures/dropout.svg": dropout,
    "autoencoders/figures/autoencoder.svg": autoencoder,
    "transfer-learning/figures/freeze-vs-fine-tune.svg": transfer_learning,
    "transformers/figures/attention-weights.svg": attention_weights,
    "large-language-models/figures/flash-attention-tiling.svg": flash_attention_tiling,
    "large-language-models/figures/kv-cache-growth.svg": kv_cache_growth,
    "large-language-models/figures/moe-routing.svg": moe_routing,
    "large-language-models/figures/sampling-temperature-top-p.svg": sampling_temperature_top_p,
    "training-at-scale/figures/parallelism-layouts.svg": parallelism_layouts,
    "training-at-scale/figures/activation-checkpointing.svg": activation_checkpointing,
    "keras-in-practice/figures/grad-cam-heatmap.svg": grad_cam_heatmap,
    "keras-in-practice/figures/imbalanced-learning-curves.svg": imbalanced_learning_curves,
}
"""Each figure's path under the content folder, and the function that draws it."""

_DOCTYPE = re.compile(rb"<!DOCTYPE[^>]*>\n")
_METADATA = re.compile(rb" *<metadata>.*?</metadata>\n", re.DOTALL)
_GEOMETRY = re.compile(rb'( (?:d|x|y|transform)=")([^"]*)"')
_LONG_NUMBER = re.compile(rb"-?\d+\.\d{3,}")


def _two_decimals(number: re.Match[bytes]) -> bytes:
    text = f"{float(number.group()):.2f}".rstrip("0").rstrip(".")
    return b"0" if text == "-0" else text.encode()


def _shorten_geometry(attribute: re.Match[bytes]) -> bytes:
    return attribute.group(1) + _LONG_NUMBER.sub(_two_decimals, attribute.group(2)) + b'"'


def render(name: str, draw: Callable[[], Figure]) -> bytes:
    """The SVG bytes of one figure; the same for the same code and matplotlib version."""
    with matplotlib.rc_context({**STYLE, "svg.id": Path(name).stem}):
        figure = draw()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    # The DOCTYPE points at an external DTD and the RDF block is boilerplate: neither is needed.
    svg = _METADATA.sub(b"", _DOCTYPE.sub(b"", buffer.getvalue()))
    # Coordinates in points to a hundredth: invisible at any zoom, and files a third smaller.
    return _GEOMETRY.sub(_shorten_geometry, svg)


def render_all(names: Sequence[str] = ()) -> Iterator[tuple[str, bytes]]:
    """(name, SVG bytes) for the named figures, or for every figure."""
    for name in names or FIGURES:
        yield name, render(name, FIGURES[name])


def stale_figures(content: Path, names: Sequence[str] = ()) -> dict[str, str]:
    """The figures whose file under `content` is missing or differs from a fresh render, and which it is."""
    stale: dict[str, str] = {}
    for name, data in render_all(names):
        path = content / name
        if not path.is_file():
            stale[name] = "missing"
        elif path.read_bytes() != data:
            stale[name] = "differs from a fresh render"
    return stale


@click.command()
@click.option(
    "--content",
    "content_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("content"),
    show_default=True,
    help="Folder of topics the figures are written into.",
)
@click.option("--check", "check_only", is_flag=True, help="Write nothing; exit 1 naming every stale figure.")
@click.argument("names", nargs=-1)
def main(content_dir: Path, check_only: bool, names: tuple[str, ...]) -> None:
    """Render the card figures into CONTENT/<topic>/figures/ (all of them, or only NAMES)."""
    unknown = [name for name in names if name not in FIGURES]
    if unknown:
        raise click.BadParameter(f"unknown figure {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    if check_only:
        stale = stale_figures(content_dir, names)
        for name, why in stale.items():
            click.echo(f"{content_dir / name}: {why}", err=True)
        if stale:
            click.echo("run 'decks figures' to rewrite them", err=True)
        sys.exit(1 if stale else 0)
    for name, data in render_all(names):
        path = content_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
            click.echo(f"wrote {path} ({len(data) / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
