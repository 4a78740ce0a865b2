"""The base of every value object: frozen, strict about unknown keys."""

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable value; unknown keys are an error, never silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")
