"""Errors whose message is shown to the user as is (one line, no traceback)."""


class TaskError(Exception):
    """A failure the user can understand and act on; the runner prints only its message."""


class InputError(TaskError):
    """The job's inputs are unusable (missing, unreadable, wrong format or bands)."""
