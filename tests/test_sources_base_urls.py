"""Base URLs of the HTTP sources: a malformed one is refused at start-up, naming its
setting, and never quoted with any part of a password.

A password must write ``/``, ``?``, ``#`` as %2F, %3F, %23 in a URL. Written raw, the host
part ends at that character: ``http://admin:s3cr/et@prom:9090`` is host ``admin``, "port"
``s3cr`` and path ``/et@prom:9090``. urlsplit's own error then quotes the "port" (a part of
the password), and a "port" that happens to be a number gives a URL that sends the rest of
the password as a path to another host.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.http_errors import redact_url
from autoscaler.sources.influx import InfluxReader
from autoscaler.sources.prometheus import PrometheusClient

Make = Callable[[str], object]

CLIENTS: list[tuple[Make, str, str]] = [
    (lambda url: PrometheusClient(url, 1), "Prometheus URL", "AUTOSCALER_PROMETHEUS_URL"),
    (lambda url: InfluxReader(url, "db", None, None, 1), "InfluxDB URL", "AUTOSCALER_INFLUXDB_URL"),
    (lambda url: ActuatorClient(url, 1), "actuator endpoint", "AUTOSCALER_ACTUATOR"),
]


@pytest.mark.parametrize(("make", "name", "setting"), CLIENTS)
@pytest.mark.parametrize("password", ["Xk9q/Wz7r", "4711/Wz7r", "Xk9q?Wz7r", "Xk9q#Wz7r"])
def test_a_password_with_a_raw_slash_is_refused_without_any_part_of_it(
    make: Make, name: str, setting: str, password: str
) -> None:
    with pytest.raises(ValueError) as e:
        make(f"http://admin:{password}@backend:9090")
    text = f"{e.value} {e.value!r}"
    for part in (password, *password.replace("?", "/").replace("#", "/").split("/")):
        assert part not in text
    assert name in text and setting in text and "***@backend:9090" in text
    assert "%2F" in text  # says how to write it


@pytest.mark.parametrize(("make", "name", "setting"), CLIENTS)
def test_a_port_that_is_no_number_names_the_setting(make: Make, name: str, setting: str) -> None:
    with pytest.raises(ValueError) as e:
        make("http://admin:s3cret@backend:90x90")
    text = str(e.value)
    assert "s3cret" not in text and "admin" not in text
    assert text == f"{name} 'http://***@backend:90x90' ({setting}): invalid port"


@pytest.mark.parametrize(("make", "name", "setting"), CLIENTS[:2])
def test_a_url_without_a_scheme_is_refused_at_start_up(make: Make, name: str, setting: str) -> None:
    """Without it every request would fail, pass after pass, as "request failed"."""
    with pytest.raises(ValueError) as e:
        make("backend:9090")
    assert str(e.value) == f"{name} 'backend:9090' ({setting}): expected http(s)://host:port"


def test_well_formed_urls_with_encoded_passwords_are_taken() -> None:
    url = "http://admin:s3cr%2Fet@backend:9090/prefix"
    assert PrometheusClient(url, 1).url == "http://backend:9090/prefix"
    assert InfluxReader(url, "db", None, None, 1).url == "http://backend:9090/prefix"
    assert ActuatorClient(url, 1).replicas() == ["http://backend:9090/prefix"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:s3cr/et@db:8086?x=1", "http://***@db:8086"),
        ("http://u:4711/s3cret@db:8086", "http://***@db:8086"),
        ("http://u:s3cret@db:80x86", "http://***@db:80x86"),
        ("http://u:s3cret@db:8086/influx?u=a&p=s3cret", "http://db:8086/influx"),
    ],
)
def test_a_url_in_a_message_shows_no_part_of_a_password(url: str, shown: str) -> None:
    """redact_url names the InfluxDB of a backtest in its report: it never raises, and a
    URL it cannot take apart is hidden, not quoted."""
    assert redact_url(url) == shown
