"""The architecture diagrams of chapters 6 and 7."""

import base64

import pytest
from matplotlib.figure import Figure

from scratchllm.book import diagrams


def labels(figure: Figure) -> str:
    """All the text drawn on a figure, joined."""
    return " ".join(text.get_text() for axes in figure.axes
                    for text in axes.texts)


@pytest.mark.parametrize(("draw", "expected"), [
    (diagrams.draw_attention,
     ["softmax", "causal mask", "Q = x W_Q", "K = x W_K", "V = x W_V",
      r"\sqrt{D}", r"-\infty"]),
    (diagrams.draw_heads, ["multi-head", "grouped-query", "multi-query"]),
    (diagrams.draw_block,
     ["RMSNorm", "self-attention", "RoPE", "SwiGLU", "residual stream"]),
    (diagrams.draw_model,
     ["token embedding", "decoder block", "RMSNorm (final)",
      "output head", "tied"]),
])
def test_diagram_has_its_labelled_boxes(draw, expected):
    figure = draw()
    assert isinstance(figure, Figure)
    text = labels(figure)
    for label in expected:
        assert label in text, f"{draw.__name__} lacks {label!r}"


def test_mask_diagram_hides_exactly_the_future():
    texts = [t.get_text() for t in diagrams.draw_attention().axes[0].texts]
    assert texts.count(r"$-\infty$") == 6 * 5 // 2
    assert texts.count("0") == 6 * 7 // 2


def test_heads_diagram_draws_one_kv_box_per_kv_head():
    text = labels(diagrams.draw_heads(n_heads=4))
    assert text.count("$q_1$") == 3
    assert "$k_4 v_4$" in text and "$k_3 v_3$" in text
    assert text.count("$k_2 v_2$") == 2 and text.count("$k_1 v_1$") == 3


def test_vector_figure_carries_svg_pdf_and_png_and_is_reproducible():
    bundle = diagrams.vector(diagrams.draw_block())._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
    assert base64.b64decode(bundle["application/pdf"]).startswith(b"%PDF")
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG")
    again = diagrams.vector(diagrams.draw_block())._repr_mimebundle_()
    assert again == bundle


def test_heads_diagram_needs_pairs_of_heads():
    with pytest.raises(ValueError, match="even"):
        diagrams.draw_heads(n_heads=3)
