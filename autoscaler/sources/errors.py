"""One typed error per backend failure, so callers can tell "down" from "no data"."""


class SourceError(Exception):
    """A backend could not be read. ``source`` names it; the message carries no secret."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class QueryRejected(SourceError):
    """The backend answered but refused this query, or answered in a shape it cannot be read
    in (several series, a range vector, no such column): the query is at fault, the backend
    is up."""


class NoData(Exception):
    """The backend answered, but with nothing (an empty result is not zero)."""
