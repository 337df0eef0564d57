"""Errors that reach users as one clear line (the CLI prints them without a traceback)."""


class UserError(Exception):
    """A mistake the user can fix: a missing folder, an unknown option, an empty collection."""


class DescribeError(Exception):
    """A describer could not describe one image.

    ``permanent`` errors (invalid image, bad key, unknown model) are never retried; transient ones
    (rate limits, 5xx, timeouts, dropped connections) are retried by the runner with backoff, honouring
    ``retry_after`` seconds when the server gave one.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class BudgetExceeded(Exception):
    """Raised inside a runner when the next call would pass the user's --max-cost."""
