"""The ``notifications`` section: a webhook called on run failure and on a newly pushed blessed model
(pipeline/notify.py sends it; docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.config import model
from pipeline.config.errors import Reader

EVENTS = ("failure", "blessed")


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    on: tuple[str, ...] = EVENTS
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class NotificationsConfig:
    webhook: WebhookConfig | None = None


def parse_notifications(top: Reader, n: model.Notifications | None) -> NotificationsConfig | None:
    """Keys and types are model.py's; this checks the URL and drops repeated events."""
    if n is None:
        return None
    if n.webhook is None:
        return NotificationsConfig()
    w = n.webhook
    url = urlsplit(w.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise top.child("notifications").child("webhook").fail(
            f"must be an http:// or https:// URL with a host, got {w.url!r}", "url")
    return NotificationsConfig(WebhookConfig(url=w.url, on=tuple(dict.fromkeys(w.on)),
                                             timeout_seconds=float(w.timeout_seconds)))
