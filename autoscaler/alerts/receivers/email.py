"""Email by SMTP: STARTTLS required by default, implicit TLS on port 465.

Each message has a plain-text and an HTML part. The password is read from a file when
sending; error messages name the server and the SMTP reply code, never the password.
"""

from __future__ import annotations

import html
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from autoscaler.alerts import templating
from autoscaler.alerts.config import EmailConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Notification
from autoscaler.settings import read_secret

log = logging.getLogger(__name__)

DEFAULT_SUBJECT = "[{{ .Status | toUpper }}:{{ len .Alerts.Firing }}] {{ .CommonLabels.alertname }}"


def text_body(n: Notification) -> str:
    lines = [f"{n.status.upper()}: {len(n.firing)} firing, {len(n.resolved)} resolved", ""]
    for title, alerts in (("Firing", n.firing), ("Resolved", n.resolved)):
        if not alerts:
            continue
        lines.append(f"{title}:")
        for a in alerts:
            lines.append(f"- {a.labels.get('alertname', '')}")
            lines += [f"    {k} = {v}" for k, v in sorted(a.labels.items()) if k != "alertname"]
            lines += [f"    {k}: {v}" for k, v in sorted(a.annotations.items())]
        lines.append("")
    return "\n".join(lines)


def html_body(n: Notification) -> str:
    e = html.escape
    rows = []
    for a in n.alerts:
        state = "resolved" if a.resolved(n.now) else "firing"
        labels = "<br>".join(f"{e(k)}={e(v)}" for k, v in sorted(a.labels.items()))
        notes = "<br>".join(f"<b>{e(k)}</b>: {e(v)}" for k, v in sorted(a.annotations.items()))
        rows.append(f"<tr><td>{state}</td><td>{labels}</td><td>{notes}</td></tr>")
    return (
        f"<html><body><h2>{e(n.status.upper())}: {e(n.common_labels.get('alertname', ''))}</h2>"
        "<table border='1' cellpadding='4'><tr><th>State</th><th>Labels</th>"
        f"<th>Annotations</th></tr>{''.join(rows)}</table></body></html>"
    )


def one_line(text: str) -> str:
    """A header value: a label or annotation with a line break (CR, LF, or one of the
    other breaks Python's email package folds at) can neither add a header nor make
    the message unbuildable."""
    return " ".join(text.splitlines())


def build_message(cfg: EmailConfig, n: Notification) -> EmailMessage:
    msg = EmailMessage()
    headers = {k.lower(): (k, v) for k, v in cfg.headers.items()}
    subject = headers.pop("subject", ("Subject", DEFAULT_SUBJECT))[1]
    msg["Subject"] = one_line(templating.render(subject, n.field))
    msg["From"] = one_line(cfg.from_)
    msg["To"] = one_line(cfg.to)
    msg["Date"] = formatdate(n.now.timestamp(), usegmt=True)
    msg["Message-Id"] = make_msgid(domain=one_line(cfg.hello))
    for name, value in headers.values():
        if name.lower() not in ("from", "to", "date", "message-id"):
            msg[name] = one_line(templating.render(value, n.field))
    msg.set_content(templating.render(cfg.text, n.field) if cfg.text else text_body(n))
    body = templating.render(cfg.html, n.field, html.escape) if cfg.html else html_body(n)
    msg.add_alternative(body, subtype="html")
    return msg


class EmailIntegration:
    kind = "email"

    def __init__(
        self,
        cfg: EmailConfig,
        *,
        timeout: float = 15.0,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        implicit_tls_ports: frozenset[int] = frozenset({465}),
    ) -> None:
        self.cfg = cfg
        self.implicit_tls_ports = implicit_tls_ports
        self.send_resolved = cfg.send_resolved
        self.timeout = timeout
        self.attempts = attempts
        self.sleep = sleep

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(
            cafile=str(self.cfg.tls_config.ca_file) if self.cfg.tls_config.ca_file else None
        )
        if self.cfg.tls_config.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        name = self.cfg.tls_config.server_name
        if name:  # smtplib checks the smarthost's name; the certificate may hold another
            wrap = ctx.wrap_socket

            def wrap_socket(sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
                kwargs["server_hostname"] = name
                return wrap(sock, *args, **kwargs)

            ctx.wrap_socket = wrap_socket  # type: ignore[method-assign]
        return ctx

    def send(self, notification: Notification) -> None:
        try:
            # errors name the key, not its value: that may be the secret itself, written
            # where its file belongs
            password = read_secret(self.cfg.auth_password_file, "auth_password_file")
        except RuntimeError as e:
            raise DeliveryError(f"email: {e}") from None
        try:
            msg = build_message(self.cfg, notification)
        except (ValueError, TypeError) as e:  # retrying the same message cannot help
            raise DeliveryError(f"email: message not built ({type(e).__name__})") from None
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                self._send_once(msg, password)
                return
            except DeliveryError:
                raise
            except smtplib.SMTPAuthenticationError as e:
                raise DeliveryError(
                    f"email: {self.cfg.smarthost} refused the login (SMTP {e.smtp_code})"
                ) from None
            except smtplib.SMTPResponseException as e:
                last = f"SMTP {e.smtp_code}"
                if 500 <= e.smtp_code < 600:
                    raise DeliveryError(f"email: {self.cfg.smarthost}: {last}") from None
            except smtplib.SMTPNotSupportedError:
                raise DeliveryError(
                    f"email: {self.cfg.smarthost} does not offer AUTH (auth_username is set)"
                ) from None
            except smtplib.SMTPRecipientsRefused:
                raise DeliveryError(f"email: {self.cfg.smarthost} refused the recipients") from None
            except (smtplib.SMTPException, OSError) as e:
                last = _describe(e)
            if attempt < self.attempts:
                self.sleep(min(2.0**attempt, 30.0))
        raise DeliveryError(
            f"email: {self.cfg.smarthost}: gave up after {self.attempts} attempts ({last})"
        )

    def _send_once(self, msg: EmailMessage, password: str | None) -> None:
        host, _, port_text = self.cfg.smarthost.rpartition(":")
        port = int(port_text)
        if host.startswith("[") and host.endswith("]"):  # [2001:db8::1]:587, as Go splits it
            host = host[1:-1]
        ctx = self._context()
        smtp: smtplib.SMTP
        implicit = port in self.implicit_tls_ports
        if implicit:
            smtp = smtplib.SMTP_SSL(
                host, port, local_hostname=self.cfg.hello, timeout=self.timeout, context=ctx
            )
        else:
            smtp = smtplib.SMTP(host, port, local_hostname=self.cfg.hello, timeout=self.timeout)
        try:
            smtp.ehlo()
            if not implicit:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=ctx)
                    smtp.ehlo()
                elif self.cfg.require_tls:
                    raise DeliveryError(
                        f"email: {self.cfg.smarthost} does not offer STARTTLS (require_tls is true)"
                    )
            if self.cfg.auth_username is not None:
                smtp.login(self.cfg.auth_username, password or "")
            refused = smtp.send_message(msg)
        except BaseException:
            smtp.close()
            raise
        # The server took the message: a QUIT that fails (an odd reply, a dropped
        # connection) must not send it again, as Alertmanager only logs it.
        try:
            code, _ = smtp.quit()
            why = None if code == 221 else f"SMTP {code}"
        except smtplib.SMTPServerDisconnected:  # closed without a reply: the usual end
            why = None
        except (smtplib.SMTPException, OSError) as e:
            why = _describe(e)
        finally:
            smtp.close()
        if why is not None:
            log.warning("email: %s took the message; QUIT failed (%s)", self.cfg.smarthost, why)
        if refused:  # sent to the others: a retry would repeat it to them, so say so here
            codes = ", ".join(sorted({str(code) for code, _ in refused.values()}))
            log.warning(
                "email: %s refused %d of the recipients (SMTP %s): they did not get it",
                self.cfg.smarthost,
                len(refused),
                codes,
            )


def _describe(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(e, ssl.SSLError):
        return "TLS error"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return "server disconnected"
    return type(e).__name__
