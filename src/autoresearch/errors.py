"""The one exception type the command line turns into a clean `error: ...` line and exit code 2."""


class UserError(Exception):
    """Something the user (or the agent) can fix; the message names the file, the field and the fix."""


class NotCounted(UserError):
    """A refusal that says nothing about the harness's health (busy lock, nothing to do): the stop gate's
    count of harness failures ignores it."""


class DataError(UserError, ValueError):
    """The table cannot be used as configured; the message says what to change."""
