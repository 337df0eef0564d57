"""Numbers a user gives (options, spec strings, price files, run ids): checked once, here.

Each check takes the value as given (text from the command line or a file, or a number from a caller) and
returns it as an ``int`` or a finite ``float`` within its bounds, or raises :class:`~connote.errors.UserError`
with one line that names ``what`` and the value. The command line's option types (``cli/common.py``) are
these checks; so are the library's own (a run id, a budget, a price), so the two cannot disagree.

A leaf module: it imports nothing of connote but the error type.
"""

from __future__ import annotations

import math
import operator

from connote.errors import UserError

#: SQLite's largest integer (a run id beyond it cannot even be looked up).
INT64_MAX = 2**63 - 1
#: Seeds numpy, scikit-learn and UMAP accept: 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1


def _bounds(low, high, kind: str) -> str:
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if low is not None:
        return f"{kind} of at least {low}"
    if high is not None:
        return f"{kind} of at most {high}"
    return kind


def _fail(what: str | None, expected: str, value) -> UserError:
    head = f"{what}: " if what else ""
    return UserError(f"{head}expected {expected}, got {value!r}")


def whole(value, what: str | None = None, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high]: '5', ' 5', 5 and 5.0 pass; '5.5', 'abc', True, nan do not."""
    expected = _bounds(low, high, "a whole number")
    if isinstance(value, bool):
        raise _fail(what, expected, value)
    if isinstance(value, str):
        try:
            n = int(value.strip())
        except ValueError:
            raise _fail(what, expected, value) from None
    elif hasattr(value, "__index__"):  # int, numpy integers
        n = operator.index(value)
    else:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise _fail(what, expected, value) from None
        if not (math.isfinite(x) and x.is_integer()):
            raise _fail(what, expected, value)
        n = int(x)
    if (low is not None and n < low) or (high is not None and n > high):
        raise _fail(what, expected, value)
    return n


def real(
    value,
    what: str | None = None,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
) -> float:
    """``value`` as a finite float in [low, high] (and > ``above``): nan, inf, 1e999 and text that is not a
    number are refused; -0 is 0."""
    if above is not None:
        expected = f"a number above {above:g}" + (f" and at most {high:g}" if high is not None else "")
    else:
        expected = _bounds(low, high, "a number")
    if isinstance(value, bool):
        raise _fail(what, expected, value)
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise _fail(what, expected, value) from None
    if not math.isfinite(x):
        raise _fail(what, expected, value)
    if (low is not None and x < low) or (high is not None and x > high) or (above is not None and x <= above):
        raise _fail(what, expected, value)
    return x + 0.0  # -0.0 -> 0.0


def budget(value, what: str = "--max-cost") -> float | None:
    """A spending limit in US dollars: None (no limit) or a finite number >= 0."""
    return None if value is None else real(value, what, low=0)


def seed(value, what: str = "--seed") -> int:
    """A random seed numpy, scikit-learn and UMAP all accept (0 .. 2**32 - 1)."""
    return whole(value, what, low=0, high=SEED_MAX)


def run_id(value, what: str = "run id") -> int:
    """A run id: a whole number SQLite can hold (1 .. 2**63 - 1)."""
    return whole(value, what, low=1, high=INT64_MAX)


#: Stage options that are counts or amounts, by name, whichever stage takes them (describers, labellers,
#: embedders): checked when the stage is made, so that a bad value is refused before the first request
#: (not sent, failed locally, and retried as if the server had erred).
STAGE_NUMBERS = {
    "concurrency": lambda v, w: whole(v, w, low=1),
    "batch_size": lambda v, w: whole(v, w, low=1),
    "max_side": lambda v, w: whole(v, w, low=1),
    "max_tokens": lambda v, w: whole(v, w, low=1),
    "max_new_tokens": lambda v, w: whole(v, w, low=1),
    "max_retries": lambda v, w: whole(v, w, low=0),
    "dimensions": lambda v, w: whole(v, w, low=1),
    "jpeg_quality": lambda v, w: whole(v, w, low=1, high=100),
    "temperature": lambda v, w: real(v, w, low=0),
    "timeout": lambda v, w: real(v, w, above=0),
}


def stage_options(options: dict, what: str) -> dict:
    """``options`` with every number of :data:`STAGE_NUMBERS` checked (None: the stage's default)."""
    return {
        k: v if v is None or k not in STAGE_NUMBERS else STAGE_NUMBERS[k](v, f"{what}: {k}")
        for k, v in options.items()
    }
