"""Helpers shared by the checks (private: not exercises)."""

from __future__ import annotations

from collections.abc import Callable


def raises_value_error(what: str, call: Callable, *args: object) -> None:
    """Assert that ``call(*args)`` raises ValueError; no exception, or
    another one, fails with a message that starts with ``what``."""
    try:
        call(*args)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(
            f"{what}: raise ValueError with a clear message, not "
            f"{type(error).__name__} ({error})") from error
    raise AssertionError(f"{what}: raise ValueError")
