"""Set up the kernels that execute the chapters (hand-written).

``tqdm.auto`` picks Jupyter widgets in a kernel where ``ipywidgets`` is
installed.  An executed notebook keeps only a widget's first frame ("0%")
as text, and the HTML book would fetch the widget code from a CDN, so
offline it shows nothing.  The executor therefore runs
:func:`use_text_progress` in every kernel before the first cell: the
chapters' bars are printed as plain text, and the rendered page keeps
their final state (see ``render.collapse_carriage_returns``).
"""

from __future__ import annotations

import sys

#: Run by IPython before the first cell (``IPKernelApp.exec_lines``).
SETUP_LINE = ("from scratchllm.book.kernel import use_text_progress as _u; "
              "_u(); del _u")


def use_text_progress() -> None:
    """Make ``tqdm.auto.tqdm`` the plain-text bar, printed on stdout (as
    the widget bars were, and so not flagged as an error stream)."""
    import tqdm.auto
    import tqdm.autonotebook
    import tqdm.std

    class TextBar(tqdm.std.tqdm):
        """The standard text bar, on stdout unless told otherwise."""

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("file", sys.stdout)
            super().__init__(*args, **kwargs)

    def text_range(*args, **kwargs) -> TextBar:
        """``trange`` for :class:`TextBar`."""
        return TextBar(range(*args), **kwargs)

    for module in (tqdm.auto, tqdm.autonotebook):
        module.tqdm = TextBar
        module.trange = text_range
