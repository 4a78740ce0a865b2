"""The base of every value object: frozen, strict about unknown keys."""

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable value; unknown keys are an error, never silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Written(Frozen):
    """What a person writes (the rules): a number must be finite, since NaN and infinity,
    which YAML reads from .nan and .inf, compare as nothing a policy could mean."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
