"""Loops that must outlive failures (the dispatcher, the notifier): log a failure streak, do not flood."""

from __future__ import annotations

import logging


class FailureStreak:
    """Failures in a row of one repeating piece of work.

    The first failure is logged with its traceback, then one line every
    ``every`` failures while the streak lasts, and one when it ends; ``delay``
    grows from ``base`` by doubling up to ``cap`` so that a store that is down
    is not hammered.
    """

    def __init__(self, log: logging.Logger, what: str, base: float, cap: float = 5.0, every: int = 20) -> None:
        self.log = log
        self.what = what
        self.base = base
        self.cap = cap
        self.every = every
        self.count = 0

    def failed(self, exc: BaseException) -> None:
        self.count += 1
        if self.count == 1:
            self.log.error("%s failed; retrying", self.what, exc_info=exc)
        elif self.count % self.every == 0:
            self.log.warning("%s still failing (%d in a row): %s: %s", self.what, self.count,
                             type(exc).__name__, exc)

    def succeeded(self) -> None:
        if self.count:
            self.log.info("%s works again after %d failure(s)", self.what, self.count)
        self.count = 0

    @property
    def delay(self) -> float:
        """Seconds to wait before the next try."""
        return self.base if not self.count else min(self.cap, self.base * 2 ** self.count)
