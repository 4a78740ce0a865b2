"""A receiver's secret written where its file belongs (``api_url_file: https://hooks...``,
``auth_password_file: hunter2``): the delivery fails naming the key, and its error (which
the dispatcher logs at each retry) does not quote the secret.

Real parts: the receivers and the file system.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.alerts.config import EmailConfig, SlackConfig, WebhookConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.receivers.email import EmailIntegration
from autoscaler.alerts.receivers.http import RateLimiter
from autoscaler.alerts.receivers.slack import SlackIntegration
from autoscaler.alerts.receivers.webhook import WebhookIntegration
from tests.test_secret_leaks import notification

SLACK_URL = "https://hooks.slack.com/services/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"
PASSWORD = "hunter2-SmtpPassw0rd"


def never(s: float) -> None:
    raise AssertionError("no retry expected")


@pytest.mark.parametrize(
    ("integration", "key", "secret"),
    [
        (
            SlackIntegration(
                SlackConfig(api_url_file=Path(SLACK_URL)), RateLimiter(0), sleep=never
            ),
            "api_url_file",
            "XxSlackWebhookSecret0123",
        ),
        (
            WebhookIntegration(WebhookConfig(url_file=Path(SLACK_URL)), sleep=never),
            "url_file",
            "XxSlackWebhookSecret0123",
        ),
        (
            EmailIntegration(
                EmailConfig.model_validate(
                    {
                        "to": "ops@example.org",
                        "from": "autoscaler@example.org",
                        "smarthost": "127.0.0.1:9",
                        "auth_username": "autoscaler",
                        "auth_password_file": PASSWORD,
                    }
                ),
                sleep=never,
            ),
            "auth_password_file",
            PASSWORD,
        ),
    ],
    ids=["slack", "webhook", "email"],
)
def test_a_secret_given_as_its_file_is_not_quoted(
    integration: SlackIntegration | WebhookIntegration | EmailIntegration,
    key: str,
    secret: str,
) -> None:
    with pytest.raises(DeliveryError) as e:
        integration.send(notification())
    text = f"{e.value} {e.value!r}"
    assert secret not in text and "hooks.slack.com" not in text, text
    assert str(e.value) == (
        f"{integration.kind}: {key}: the file it names cannot be read (No such file or directory)"
    )


def test_an_empty_password_file_fails_clearly_rather_than_logging_in_without_one(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "smtp_password"
    empty.write_text("\n")
    cfg = EmailConfig.model_validate(
        {
            "to": "ops@example.org",
            "from": "autoscaler@example.org",
            "smarthost": "127.0.0.1:9",
            "auth_username": "autoscaler",
            "auth_password_file": str(empty),
        }
    )
    with pytest.raises(DeliveryError) as e:
        EmailIntegration(cfg, sleep=never).send(notification())
    assert str(e.value) == "email: auth_password_file: the file it names is empty"
