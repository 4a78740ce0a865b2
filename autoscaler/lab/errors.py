"""The one error the lab raises: something on this machine could not be set up or torn down."""


class LabError(RuntimeError):
    """A lab step failed; the message says which step and, for an engine, its log tail."""
