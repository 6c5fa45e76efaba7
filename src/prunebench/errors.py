"""User errors: problems a researcher can fix, reported as one line, never a traceback."""


class UserError(Exception):
    """A bad input. The message names the problem and the fix, on one line."""
