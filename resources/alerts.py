"""Alerts without Dagster+: Slack-compatible JSON posted to a webhook, or the log when unset."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from pydantic import Field

from resources.dagster_resources import CheckedSettings
from resources.settings_check import webhook_problems

log = logging.getLogger("gold_platform.alerts")


class AlertNotifier(CheckedSettings):
    webhook_url: str | None = Field(
        default=None, description="ALERT_WEBHOOK_URL: Slack-compatible incoming webhook."
    )
    timeout_s: float = Field(default=5.0, description="Webhook request timeout.")

    def settings_problems(self) -> list[str]:
        return webhook_problems(self.webhook_url)

    @property
    def target(self) -> str:
        """Where alerts go, for logs (a webhook URL's path is a secret: only the host is shown)."""
        if not self.webhook_url:
            return "log"
        return f"webhook at {urlsplit(self.webhook_url).hostname}"

    def send(self, title: str, text: str, ok: bool, fields: dict | None = None) -> bool:
        """Post one message; returns False (and logs) when the webhook could not be reached."""
        self.require_settings()
        emoji = ":white_check_mark:" if ok else ":rotating_light:"
        payload = {
            "text": f"{emoji} {title}\n{text}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{title}*"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            ],
            "status": "recovered" if ok else "failing",
            "fields": fields or {},
        }
        if not self.webhook_url:
            log.warning("ALERT %s: %s %s", "OK" if ok else "FAIL", title, text)
            return True
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(payload, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            log.error("alert to %s failed: %s", self.target, type(exc).__name__)
            return False
