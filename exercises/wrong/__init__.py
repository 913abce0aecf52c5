"""Plausible wrong solutions: each check must reject every one of them.

``wrong/<slug>.py`` defines, for each exercise of ``NN_<slug>.md``, one or
more functions named ``<exercise>__<what_is_wrong>``, each making one
mistake learners make, described in its docstring. The decorator
:func:`says` records a fragment that the check's ``AssertionError``
message must contain, so that the message points at the mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def says(fragment: str) -> Callable[[F], F]:
    """Mark a wrong solution with (part of) the message its check gives."""
    def mark(function: F) -> F:
        function.says = fragment
        return function
    return mark
