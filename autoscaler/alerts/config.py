"""Alerting configuration: alert rules, and routing in Alertmanager's own YAML format.

``route``, ``receivers``, ``inhibit_rules`` and ``time_intervals`` read as in an
``alertmanager.yml``. An Alertmanager option this sidecar does not implement is an error
that names it: a routing tree never loses a setting silently.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from autoscaler.alerts import templating
from autoscaler.alerts.matchers import LABEL_NAME, Matcher, parse_matchers
from autoscaler.alerts.timeintervals import TimeInterval
from autoscaler.model import Written
from autoscaler.rules.windows import RuleDuration


def _refuse(data: Any, known: dict[str, str]) -> Any:
    """Name Alertmanager options that exist but are not implemented here."""
    if isinstance(data, dict):
        for key in data:
            if key in known:
                raise ValueError(f"'{key}' is not supported: {known[key]}")
    return data


_NOT_IMPLEMENTED = "an Alertmanager option this sidecar does not implement"

# ---------------------------------------------------------------- routing


def _check_matchers(v: tuple[str, ...]) -> tuple[str, ...]:
    for item in v:
        parse_matchers(item)
    return v


def _check_re(v: dict[str, str]) -> dict[str, str]:
    for name, value in v.items():
        Matcher.make(name, "=~", value)
    return v


def _check_names(v: dict[str, str]) -> dict[str, str]:
    for name in v:
        if not LABEL_NAME.match(name):
            raise ValueError(f"invalid label name {name!r}")
    return v


class RouteConfig(Written):
    """One node of the routing tree; options left out are inherited from the parent."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    receiver: str | None = None
    group_by: tuple[str, ...] | None = None
    continue_: bool = Field(default=False, alias="continue")
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    matchers: tuple[str, ...] = ()
    group_wait: RuleDuration | None = None
    group_interval: RuleDuration | None = None
    repeat_interval: RuleDuration | None = None
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_matchers(v)

    @field_validator("match_re")
    @classmethod
    def _match_re(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_re(_check_names(v))

    @field_validator("match")
    @classmethod
    def _match(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_names(v)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if "..." in v and len(v) > 1:
            raise ValueError("group_by '...' groups by every label: it must be alone")
        for name in v:
            if name != "..." and not LABEL_NAME.match(name):
                raise ValueError(f"invalid label name {name!r} in group_by")
        return v

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return v

    def all_matchers(self) -> list[Matcher]:
        out = [Matcher.make(k, "=", v) for k, v in self.match.items()]
        out += [Matcher.make(k, "=~", v) for k, v in self.match_re.items()]
        for item in self.matchers:
            out += parse_matchers(item)
        return out

    def walk(self) -> list[RouteConfig]:
        out = [self]
        for child in self.routes:
            out += child.walk()
        return out


# ---------------------------------------------------------------- receivers


class SlackConfig(Written):
    """Slack incoming webhook; the URL is a secret, so it is read from a file."""

    api_url_file: Path
    send_resolved: bool = False
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None
    title: str = "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}"
    text: str = "{{ .CommonAnnotations.summary }}"
    color: str | None = None
    """Fixed colour; by default good/warning/danger from the state and severity."""

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_url" in data:
            raise ValueError(
                "'api_url' would put the webhook URL (a secret) into the rules: "
                "write it to a file and set 'api_url_file'"
            )
        return _refuse(
            data,
            {
                k: _NOT_IMPLEMENTED
                for k in (
                    "http_config",
                    "title_link",
                    "pretext",
                    "fields",
                    "short_fields",
                    "footer",
                    "fallback",
                    "callback_id",
                    "icon_url",
                    "image_url",
                    "thumb_url",
                    "link_names",
                    "mrkdwn_in",
                    "actions",
                )
            },
        )

    @field_validator("title", "text")
    @classmethod
    def _template(cls, v: str) -> str:
        return templating.check_template(v, templating.NOTIFICATION_FIELDS)


class TLSConfig(Written):
    ca_file: Path | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        return _refuse(
            data, {k: _NOT_IMPLEMENTED for k in ("cert_file", "key_file", "min_version")}
        )


class EmailConfig(Written):
    to: str = Field(min_length=3)
    from_: str = Field(alias="from", min_length=3)
    smarthost: str
    """host:port; port 465 is implicit TLS, any other STARTTLS."""
    hello: str = "localhost"
    auth_username: str | None = None
    auth_password_file: Path | None = None
    require_tls: bool = True
    tls_config: TLSConfig = TLSConfig()
    send_resolved: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    text: str | None = None
    html: str | None = None

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict) and "auth_password" in data:
            raise ValueError(
                "'auth_password' would put the password into the rules: "
                "write it to a file and set 'auth_password_file'"
            )
        return _refuse(
            data,
            {k: _NOT_IMPLEMENTED for k in ("auth_secret", "auth_identity", "auth_secret_file")},
        )

    @field_validator("smarthost")
    @classmethod
    def _hostport(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"smarthost {v!r} must be host:port")
        return v

    @field_validator("text", "html")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return None if v is None else templating.check_template(v, templating.NOTIFICATION_FIELDS)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for value in v.values():
            templating.check_template(value, templating.NOTIFICATION_FIELDS)
        return v

    @model_validator(mode="after")
    def _auth(self) -> EmailConfig:
        if (self.auth_username is None) != (self.auth_password_file is None):
            raise ValueError("set both auth_username and auth_password_file, or neither")
        return self


class WebhookConfig(Written):
    """POST of Alertmanager's webhook JSON (version 4) to a URL."""

    url: str | None = None
    url_file: Path | None = None
    send_resolved: bool = True
    max_alerts: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        return _refuse(data, {"http_config": _NOT_IMPLEMENTED})

    @model_validator(mode="after")
    def _one(self) -> WebhookConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set exactly one of 'url' or 'url_file'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.url is not None and "@" in self.url.split("/")[2]:
            raise ValueError("url has credentials in it: use 'url_file' for secret URLs")
        return self


class AlertmanagerForward(Written):
    """Forward alerts to an existing Alertmanager's ``/api/v2/alerts``."""

    url: str
    send_resolved: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v.rstrip("/")


_OTHER_INTEGRATIONS = (
    "pagerduty_configs",
    "opsgenie_configs",
    "wechat_configs",
    "pushover_configs",
    "victorops_configs",
    "sns_configs",
    "telegram_configs",
    "webex_configs",
    "discord_configs",
    "msteams_configs",
)


class ReceiverConfig(Written):
    name: str = Field(min_length=1)
    slack_configs: tuple[SlackConfig, ...] = ()
    email_configs: tuple[EmailConfig, ...] = ()
    webhook_configs: tuple[WebhookConfig, ...] = ()
    alertmanager_configs: tuple[AlertmanagerForward, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        return _refuse(
            data,
            {
                k: f"{_NOT_IMPLEMENTED} (supported: slack_configs, email_configs, "
                "webhook_configs, alertmanager_configs)"
                for k in _OTHER_INTEGRATIONS
            },
        )


# ---------------------------------------------------------------- inhibition


class InhibitRuleConfig(Written):
    source_matchers: tuple[str, ...] = ()
    target_matchers: tuple[str, ...] = ()
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: tuple[str, ...] = ()

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _matchers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_matchers(v)

    @field_validator("source_match_re", "target_match_re")
    @classmethod
    def _match_re(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_re(_check_names(v))

    @field_validator("source_match", "target_match")
    @classmethod
    def _match(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_names(v)

    @field_validator("equal")
    @classmethod
    def _equal(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _check_names(dict.fromkeys(v, ""))
        return v

    def source(self) -> list[Matcher]:
        return _combine(self.source_match, self.source_match_re, self.source_matchers)

    def target(self) -> list[Matcher]:
        return _combine(self.target_match, self.target_match_re, self.target_matchers)


def _combine(eq: dict[str, str], regex: dict[str, str], texts: tuple[str, ...]) -> list[Matcher]:
    out = [Matcher.make(k, "=", v) for k, v in eq.items()]
    out += [Matcher.make(k, "=~", v) for k, v in regex.items()]
    for t in texts:
        out += parse_matchers(t)
    return out


# ---------------------------------------------------------------- alert rules

CompareOp = Literal[">", ">=", "<", "<=", "==", "!="]

AlertTemplate = Annotated[
    str, AfterValidator(lambda v: templating.check_template(v, templating.ALERT_FIELDS))
]
"""A label or annotation value: checked one by one, so an error names its key and line."""


class AlertRule(Written):
    """An alert over one signal (threshold) or over a PromQL expression Prometheus evaluates."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    enabled: bool = True
    signal: str | None = None
    op: CompareOp | None = None
    value: float | None = None
    expr: str | None = None
    for_: RuleDuration = Field(default=timedelta(0), alias="for")
    keep_firing_for: RuleDuration = timedelta(0)
    severity: Literal["critical", "warning", "info"] = "warning"
    labels: dict[str, AlertTemplate] = Field(default_factory=dict)
    """Templated per alert as annotations are (Prometheus does); empty results are dropped."""
    annotations: dict[str, AlertTemplate] = Field(default_factory=dict)
    runbook: str | None = None

    @field_validator("expr")
    @classmethod
    def _parses(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import promql_parser

        try:
            promql_parser.parse(v)
        except ValueError as e:
            raise ValueError(f"PromQL does not parse: {e}") from None
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        _check_names(v)
        for reserved in ("alertname", "severity"):
            if reserved in v:
                raise ValueError(f"label '{reserved}' is set by the alert itself")
        return v

    @field_validator("annotations")
    @classmethod
    def _annotation_names(cls, v: dict[str, str]) -> dict[str, str]:
        # Alertmanager refuses an alert with any other name (400 for the whole post when
        # forwarded), and Prometheus refuses such a rule when it loads it
        for name in v:
            if not LABEL_NAME.match(name):
                raise ValueError(f"invalid annotation name {name!r} (letters, digits and _)")
        return v

    @model_validator(mode="after")
    def _one_condition(self) -> AlertRule:
        threshold = (self.signal, self.op, self.value)
        if self.expr is not None:
            if any(x is not None for x in threshold):
                raise ValueError("use either 'expr' or 'signal'/'op'/'value', not both")
        elif any(x is None for x in threshold):
            raise ValueError("an alert needs 'expr', or all of 'signal', 'op' and 'value'")
        return self


# ---------------------------------------------------------------- the whole routing set


DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


class RoutingConfig(Written):
    """What an ``alertmanager.yml`` holds that routing needs (checked as a whole)."""

    route: RouteConfig
    receivers: tuple[ReceiverConfig, ...] = ()
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()
    time_intervals: tuple[TimeInterval, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RoutingConfig:
        for problem in routing_problems(self):
            raise ValueError(problem[1])
        return self

    def receiver(self, name: str) -> ReceiverConfig | None:
        for r in self.receivers:
            if r.name == name:
                return r
        return None


def routing_problems(
    cfg: RoutingConfig | None,
    route: RouteConfig | None = None,
    receivers: tuple[ReceiverConfig, ...] = (),
    intervals: tuple[TimeInterval, ...] = (),
) -> list[tuple[tuple[str | int, ...], str]]:
    """Whole-set checks, each with the path of the key at fault."""
    if cfg is not None:
        route, receivers, intervals = cfg.route, cfg.receivers, cfg.time_intervals
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names: dict[str, int] = {}
    for i, r in enumerate(receivers):
        if r.name in names:
            problems.append((("receivers", i, "name"), f"receiver '{r.name}' is defined twice"))
        names[r.name] = i
    interval_names: set[str] = set()
    for i, t in enumerate(intervals):  # at run time the last would silently win
        if t.name in interval_names:
            problems.append(
                (("time_intervals", i, "name"), f"time interval '{t.name}' is defined twice")
            )
        interval_names.add(t.name)
    if route is None:
        return problems
    if not route.receiver:
        problems.append((("route",), "the root route needs a default 'receiver'"))
    if route.all_matchers():
        problems.append((("route",), "the root route must not have matchers: it matches all"))
    if route.mute_time_intervals or route.active_time_intervals:
        problems.append((("route",), "the root route must not have time intervals"))

    def visit(node: RouteConfig, loc: tuple[str | int, ...]) -> None:
        if node.receiver and node.receiver not in names:
            known = ", ".join(sorted(names)) or "none"
            problems.append(
                ((*loc, "receiver"), f"undefined receiver '{node.receiver}' (defined: {known})")
            )
        for key in ("mute_time_intervals", "active_time_intervals"):
            for j, name in enumerate(getattr(node, key)):
                if name not in interval_names:
                    problems.append(((*loc, key, j), f"undefined time interval '{name}'"))
        for i, child in enumerate(node.routes):
            visit(child, (*loc, "routes", i))

    visit(route, ("route",))
    return problems


def load_routing_file(path: Path) -> RoutingConfig:
    """An ``alertmanager.yml``-style file: its ``route``, ``receivers`` (names only are
    needed to route), ``inhibit_rules`` and ``time_intervals``; other sections are ignored."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "route" not in data:
        raise ValueError(f"{path}: needs a top-level 'route'")
    receivers = [
        {"name": r.get("name")} for r in data.get("receivers") or [] if isinstance(r, dict)
    ]
    intervals = list(data.get("time_intervals") or []) + list(data.get("mute_time_intervals") or [])
    return RoutingConfig.model_validate(
        {
            "route": data["route"],
            "receivers": receivers,
            "inhibit_rules": data.get("inhibit_rules") or [],
            "time_intervals": intervals,
        }
    )
