"""The one error type for mistakes a user can make.

Raise :class:`PersonaError` with a message that says what to change. The CLI prints it as one
line and exits 1; tracebacks are reserved for our own bugs.
"""

import click


class PersonaError(click.ClickException):
    """A user-fixable problem: bad input, a missing file, an unsupported model."""

    exit_code = 1
