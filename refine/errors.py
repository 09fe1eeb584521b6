"""Errors that refine reports to users as one line (no traceback)."""


class InputError(ValueError):
    """Bad user input: the message names the file/value and what to do."""
