"""botocore failures (no answer from AWS) as words an operator can act on, without secrets."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)

from autoscaler.providers.role_credentials import METHOD


def unreachable(exc: BotoCoreError, service: str) -> str:
    """A botocore failure (no answer from AWS) in words: missing credentials say so, with
    what the role file lacks; anything else by its type only (its text may quote a URL)."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return f"no AWS credentials ({exc})"
    if isinstance(exc, CredentialRetrievalError):
        own = exc.kwargs.get("provider") == METHOD  # other providers quote a process's stderr
        return f"no AWS credentials ({exc.kwargs.get('error_msg') if own else type(exc).__name__})"
    return f"{service} unreachable: {type(exc).__name__}"
