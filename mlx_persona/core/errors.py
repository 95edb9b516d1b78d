"""The one error type for mistakes a user can make.

Raise :class:`PersonaError` with a message that says what to change. It is a plain exception,
so library code (and a stage's child process) does not depend on the command line; the
``mlx-persona`` command group (:mod:`mlx_persona.cli`) prints it as one ``Error: ...`` line and
exits 1, and a child process records it for its parent (:mod:`mlx_persona.core.child`).
Tracebacks are reserved for our own bugs.
"""


class PersonaError(Exception):
    """A user-fixable problem: bad input, a missing file, an unsupported model."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
