"""The sidecar's logging: one stderr handler, and no third-party DEBUG output with secrets.

At DEBUG, botocore logs every request's parameters and every response's body: the Swarm
join token written to and read back from SSM, too. The AWS SDK's loggers are therefore
kept at INFO or above whatever level is asked. (urllib3's DEBUG lines name request paths;
webhook URLs in them are redacted by ``autoscaler.alerts.receivers.http``.)
"""

from __future__ import annotations

import logging
import sys

AWS_SDK_LOGGERS = ("botocore", "boto3", "s3transfer")
"""Loggers that never go below INFO: their DEBUG output has request and response bodies."""

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level_name: str) -> None:
    """Log to stderr at ``level_name`` (DEBUG, INFO, WARNING...; unknown: INFO)."""
    level = getattr(logging, level_name.upper(), logging.INFO)
    if not isinstance(level, int):
        level = logging.INFO
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr)
    quiet_aws_sdk(level)


def quiet_aws_sdk(level: int | None = None) -> None:
    """Keep the AWS SDK's loggers (and any child given a level of its own) at INFO or above.

    ``level`` is the level asked for the sidecar (default: the root logger's); a level
    above INFO is kept, so WARNING still hides the SDK's INFO lines.
    """
    asked = logging.getLogger().getEffectiveLevel() if level is None else level
    floor = max(logging.INFO, asked)
    for name in AWS_SDK_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.level))  # explicit: a later root level cannot lower it
    children = tuple(f"{n}." for n in AWS_SDK_LOGGERS)
    for name, child in list(logging.Logger.manager.loggerDict.items()):
        if (
            isinstance(child, logging.Logger)
            and name.startswith(children)
            and logging.NOTSET < child.level < logging.INFO
        ):
            child.setLevel(logging.INFO)
