"""Architecture diagrams for chapters 6 and 7, drawn with matplotlib.

Each ``draw_*`` function returns a :class:`~matplotlib.figure.Figure` laid
out in inches (the axes span the figure, one data unit is one inch), so
the fonts print at their stated size when the figure is shown at its
natural width, which is at most the page's text width. The figures are
created without pyplot: nothing is registered with a backend and nothing
needs closing. :func:`vector` wraps a figure so that ``glue`` stores it as
SVG (for HTML) and PDF (for LaTeX) beside a PNG: the printed book gets
vector drawings.
"""

from __future__ import annotations

import base64
import io

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

INK = "#333333"
MUTED = "#777777"
ATTENTION = "#dbe9f6"
NORM = "#fdf1c7"
FEED_FORWARD = "#dff0d8"
EMBEDDING = "#ece3f4"
PLAIN = "#f2f2f2"
FONT_SIZE = 10


def canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A blank figure of width x height inches with inch coordinates."""
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.set_axis_off()
    return figure, axes


def box(
    axes: Axes,
    center: tuple[float, float],
    size: tuple[float, float],
    text: str,
    color: str = PLAIN,
    font_size: float = FONT_SIZE,
    dashed: bool = False,
) -> None:
    """A rounded box with centred text."""
    (x, y), (width, height) = center, size
    axes.add_patch(FancyBboxPatch(
        (x - width / 2, y - height / 2), width, height,
        boxstyle="round,pad=0,rounding_size=0.06", facecolor=color,
        edgecolor=INK, linewidth=0.9, linestyle="--" if dashed else "-",
    ))
    axes.text(x, y, text, ha="center", va="center", fontsize=font_size,
              color=INK)


def arrow(
    axes: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    style: str = "-|>",
    color: str = INK,
    dashed: bool = False,
) -> None:
    """A straight arrow from start to end."""
    axes.annotate(
        "", xy=end, xytext=start,
        arrowprops={"arrowstyle": style, "color": color, "linewidth": 0.9,
                    "shrinkA": 0, "shrinkB": 0, "mutation_scale": 10,
                    "linestyle": "--" if dashed else "-"},
    )


def line(
    axes: Axes, *points: tuple[float, float], dashed: bool = False
) -> None:
    """A polyline through points, with no arrow head."""
    xs, ys = zip(*points, strict=True)
    axes.plot(xs, ys, color=INK, linewidth=0.9, solid_capstyle="butt",
              linestyle="--" if dashed else "-")


def note(
    axes: Axes, x: float, y: float, text: str, ha: str = "left",
    font_size: float = FONT_SIZE - 1,
) -> None:
    """A small grey annotation, such as a tensor shape."""
    axes.text(x, y, text, ha=ha, va="center", fontsize=font_size,
              color=MUTED)


def plus(axes: Axes, x: float, y: float, radius: float = 0.13) -> None:
    """The circled plus of a residual addition."""
    axes.add_patch(Circle((x, y), radius, facecolor="white",
                          edgecolor=INK, linewidth=0.9, zorder=3))
    axes.text(x, y, "+", ha="center", va="center_baseline",
              fontsize=FONT_SIZE + 1, color=INK, zorder=4)


def draw_mask(
    axes: Axes, left: float, top: float, size: int = 6, cell: float = 0.27
) -> None:
    """The causal mask as a size x size grid whose top-left corner is at
    (left, top): 0 on and below the diagonal, -inf above it."""
    for row in range(size):
        for column in range(size):
            allowed = column <= row
            axes.add_patch(Rectangle(
                (left + column * cell, top - (row + 1) * cell), cell, cell,
                facecolor=ATTENTION if allowed else PLAIN,
                edgecolor="white", linewidth=1.2,
            ))
            axes.text(left + (column + 0.5) * cell,
                      top - (row + 0.5) * cell,
                      "0" if allowed else r"$-\infty$", ha="center",
                      va="center", fontsize=7,
                      color=INK if allowed else MUTED)
    note(axes, left + size * cell / 2, top + 0.15, r"key $s$ $\rightarrow$",
         ha="center", font_size=8.5)
    axes.text(left + size * cell + 0.13, top - size * cell / 2,
              r"query $t$ $\rightarrow$", ha="center", va="center",
              rotation=-90, fontsize=8.5, color=MUTED)


def draw_attention() -> Figure:
    """One causal attention head: projections, scaled scores, the causal
    mask (drawn as a matrix), softmax and the weighted sum of values."""
    figure, axes = canvas(6.0, 4.5)
    q_x, k_x, v_x, size = 0.75, 1.95, 3.15, (1.05, 0.42)
    box(axes, (k_x, 0.35), (3.0, 0.42), r"$x$  $[T, d]$")
    for x, name in [(q_x, "Q"), (k_x, "K"), (v_x, "V")]:
        arrow(axes, (x, 0.56), (x, 0.99))
        box(axes, (x, 1.2), size, rf"${name} = x W_{name}$",
            color=ATTENTION)
    scores_x = (q_x + k_x) / 2
    arrow(axes, (q_x, 1.41), (q_x, 1.89))
    arrow(axes, (k_x, 1.41), (k_x, 1.89))
    box(axes, (scores_x, 2.1), (2.25, 0.42), r"$Q K^\top / \sqrt{D}$")
    note(axes, scores_x + 1.2, 2.1, r"$[T, T]$")
    arrow(axes, (scores_x, 2.31), (scores_x, 2.59))
    box(axes, (scores_x, 2.8), (2.25, 0.42), r"$+\ M$ (causal mask)")
    arrow(axes, (scores_x, 3.01), (scores_x, 3.29))
    box(axes, (scores_x, 3.5), (2.25, 0.42), "softmax (each row)",
        color=NORM)
    note(axes, scores_x + 1.2, 3.5, "weights")
    out_x = (scores_x + v_x) / 2 + 0.1
    arrow(axes, (scores_x, 3.71), (scores_x, 4.0))
    arrow(axes, (v_x, 1.41), (v_x, 4.0))
    box(axes, (out_x, 4.2), (2.95, 0.4), r"weights $\cdot\ V$  $[T, D]$",
        color=ATTENTION)
    draw_mask(axes, left=4.05, top=3.35)
    note(axes, 4.86, 3.8, r"$M$ for $T = 6$", ha="center",
         font_size=FONT_SIZE)
    arrow(axes, (4.0, 2.55), (scores_x + 1.16, 2.8), dashed=True,
          color=MUTED)
    return figure


def draw_heads(n_heads: int = 4) -> Figure:
    """Query heads and the key/value heads they read, for multi-head,
    grouped-query (groups of two) and multi-query attention."""
    if n_heads < 2 or n_heads % 2:
        raise ValueError(f"n_heads must be even and positive, not {n_heads}")
    figure, axes = canvas(6.0, 1.95)
    width, step = 0.39, 0.44
    variants = [("multi-head", n_heads), ("grouped-query", n_heads // 2),
                ("multi-query", 1)]
    for panel, (name, kv_heads) in enumerate(variants):
        left = 0.13 + panel * 2.0
        center = left + (n_heads - 1) * step / 2 + width / 2
        axes.text(center, 1.78, rf"{name}, $H_{{kv}} = {kv_heads}$",
                  ha="center", va="center", fontsize=FONT_SIZE, color=INK)
        group = n_heads // kv_heads
        for head in range(n_heads):
            x = left + head * step + width / 2
            box(axes, (x, 1.3), (width, 0.34), rf"$q_{head + 1}$",
                color=ATTENTION, font_size=9)
            line(axes, (x, 1.13), (x, 0.67))
        for kv_head in range(kv_heads):
            first = left + kv_head * group * step
            span = (group - 1) * step + width
            box(axes, (first + span / 2, 0.5), (span, 0.34),
                rf"$k_{kv_head + 1} v_{kv_head + 1}$", color=NORM,
                font_size=9)
        plural = "s" if kv_heads > 1 else ""
        note(axes, center, 0.13, f"KV cache: {kv_heads} head{plural}",
             ha="center", font_size=8.5)
    return figure


def draw_block() -> Figure:
    """A pre-norm decoder block: two residual branches, RMSNorm then
    attention, RMSNorm then the SwiGLU feed-forward."""
    figure, axes = canvas(4.6, 5.25)
    stream, branch, wide = 0.85, 2.75, (2.6, 0.62)
    axes.add_patch(FancyBboxPatch(
        (0.3, 0.62), 4.15, 4.08, boxstyle="round,pad=0,rounding_size=0.1",
        facecolor="none", edgecolor=MUTED, linewidth=0.8, linestyle="--",
    ))
    note(axes, 4.35, 4.52, r"block $\times$ n_layers", ha="right")
    box(axes, (stream, 0.3), (1.5, 0.4), r"$x$  $[B, T, d]$")
    axes.text(stream - 0.17, 1.55, "residual stream", rotation=90,
              ha="center", va="center", fontsize=FONT_SIZE - 1,
              color=MUTED)
    for bottom, name, text, color in [
        (0.8, "attention", "causal self-attention\n(GQA, RoPE on q and k)",
         ATTENTION),
        (2.8, "ffn", "SwiGLU feed-forward\n(gate, up, down)",
         FEED_FORWARD),
    ]:
        top = bottom + 1.65
        line(axes, (stream, bottom), (branch, bottom), (branch, bottom + 0.1))
        arrow(axes, (branch, bottom), (branch, bottom + 0.11))
        box(axes, (branch, bottom + 0.3), (1.6, 0.38), "RMSNorm", NORM)
        arrow(axes, (branch, bottom + 0.49), (branch, bottom + 0.74))
        box(axes, (branch, bottom + 1.05), wide, text, color)
        line(axes, (branch, bottom + 1.36), (branch, top))
        arrow(axes, (branch, top), (stream + 0.13, top))
        plus(axes, stream, top)
    arrow(axes, (stream, 0.5), (stream, 2.32))
    arrow(axes, (stream, 2.58), (stream, 4.32))
    arrow(axes, (stream, 4.58), (stream, 5.05))
    note(axes, stream + 0.12, 4.95, "to the next block")
    return figure


def draw_model() -> Figure:
    """The decoder-only model: embedding, n_layers blocks, final norm and
    the output head, which shares its matrix with the embedding."""
    figure, axes = canvas(4.8, 4.75)
    center, size = 1.8, (2.7, 0.42)
    note(axes, center, 0.2, r"token ids  $[B, T]$", ha="center",
         font_size=FONT_SIZE)
    arrow(axes, (center, 0.35), (center, 0.64))
    box(axes, (center, 0.85), size, r"token embedding  $[V, d]$",
        EMBEDDING)
    arrow(axes, (center, 1.06), (center, 1.5))
    for shift in (0.12, 0.06):
        box(axes, (center + shift, 1.85 + shift), (2.7, 0.7), "",
            ATTENTION)
    box(axes, (center, 1.85), (2.7, 0.7),
        "decoder block\n(attention, SwiGLU)", ATTENTION)
    note(axes, center + 1.62, 1.85, r"$\times$ n_layers")
    arrow(axes, (center, 2.2), (center, 2.64))
    box(axes, (center, 2.85), size, "RMSNorm (final)", NORM)
    arrow(axes, (center, 3.06), (center, 3.39))
    box(axes, (center, 3.6), size, r"output head: linear $d \to V$",
        EMBEDDING)
    arrow(axes, (center, 3.81), (center, 4.22))
    note(axes, center, 4.42, r"logits  $[B, T, V]$", ha="center",
         font_size=FONT_SIZE)
    right, edge = 4.4, center + size[0] / 2
    line(axes, (edge, 0.85), (right, 0.85), (right, 3.6), dashed=True)
    arrow(axes, (right, 3.6), (edge, 3.6), dashed=True)
    axes.text(right + 0.16, 2.22, "tied: one shared matrix", rotation=90,
              ha="center", va="center", fontsize=FONT_SIZE - 1,
              color=MUTED)
    return figure


class VectorFigure:
    """A figure that displays as SVG, PDF and PNG at once, so that the HTML
    book shows the SVG and the LaTeX book includes the PDF (myst-nb picks
    the format each builder prefers)."""

    def __init__(self, figure: Figure, dpi: int = 150) -> None:
        self.figure = figure
        self.dpi = dpi

    def render(self, file_format: str) -> bytes:
        """The figure as bytes in file_format, without dates or random
        ids, so that re-executing the book gives the same notebook."""
        metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None},
                    "png": {}}[file_format]
        buffer = io.BytesIO()
        with rc_context({"svg.hashsalt": "scratchllm"}):
            self.figure.savefig(buffer, format=file_format, dpi=self.dpi,
                                metadata=metadata)
        return buffer.getvalue()

    def _repr_mimebundle_(
        self, include: object = None, exclude: object = None
    ) -> dict[str, str]:
        """The display data: SVG text, base64 PDF and PNG, and a line of
        plain text."""
        encode = base64.b64encode
        return {
            "image/svg+xml": self.render("svg").decode("utf-8"),
            "application/pdf": encode(self.render("pdf")).decode("ascii"),
            "image/png": encode(self.render("png")).decode("ascii"),
            "text/plain": "<diagram>",
        }


def vector(figure: Figure) -> VectorFigure:
    """Wrap figure for ``glue``: stored as SVG, PDF and PNG."""
    return VectorFigure(figure)
