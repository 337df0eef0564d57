"""Errors that reach users as one clear line (the CLI prints them without a traceback)."""


class UserError(Exception):
    """A mistake the user can fix: a missing folder, an unknown option, an empty collection."""


class DescribeError(Exception):
    """A describer could not describe one image.

    ``permanent`` errors (invalid image, bad key, unknown model) are never retried; transient ones
    (rate limits, 5xx, timeouts, dropped connections) are retried by the runner with backoff, honouring
    ``retry_after`` seconds when the server gave one. ``fatal`` errors (a refused API key) would fail
    every image the same way: the runner stops sending and leaves the images to do.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None, fatal: bool = False
    ):
        super().__init__(message)
        self.permanent = permanent or fatal
        self.retry_after = retry_after
        self.fatal = fatal


class BudgetExceeded(Exception):
    """Raised inside a runner when the next call would pass the user's --max-cost."""
