"""Errors the command line reports as one line (exit code 2) instead of a traceback."""


class UserError(Exception):
    """Bad input by the user: a missing file, an unknown name, an invalid setting.

    The message is one line that names the bad value and says what is allowed.
    """
