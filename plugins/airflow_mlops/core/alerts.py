"""Alert messages: what happened, what it means, where to look. Plain Python, no Airflow.

An Alert renders as an e-mail (subject, text and HTML), a JSON payload for a webhook, or a
Slack message. Every text field passes through `redact` (core.redaction) first: a message never
carries a password, a secret, a token, a key or the credentials of a URL, whatever the error it quotes held.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.redaction import redact

__all__ = ["EVENT_TITLES", "Alert", "failing_checks", "first_line", "redact"]

#: The event as a person reads it in a subject line.
EVENT_TITLES = {
    "run_failed": "run failed",
    "promoted": "new champion",
    "rolled_back": "champion rolled back",
    "rejected": "challenger rejected",
    "drift_confirmed": "drift confirmed, retrain requested",
    "performance_decay": "performance decay",
    "approval_waiting": "approval waiting",
}
SUBJECT_LIMIT = 160


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of `text`, cut to `limit` characters."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class Alert:
    """One event of one pipeline, ready to be sent anywhere."""

    event: str  # a key of EVENT_TITLES
    pipeline: str
    summary: str  # what happened, one line
    meaning: str  # what it means for the serving model and what to do
    details: list[str] = field(default_factory=list)  # facts: versions, checks, the error's first line
    links: dict[str, str] = field(default_factory=dict)  # label -> URL (Airflow run, task log, MLflow run)

    @property
    def title(self) -> str:
        return EVENT_TITLES.get(self.event, self.event.replace("_", " "))

    def subject(self) -> str:
        text = redact(f"[airflow-mlops] {self.pipeline}: {self.title}: {first_line(self.summary)}")
        return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."

    def text(self) -> str:
        lines = [self.summary, "", self.meaning]
        if self.details:
            lines += ["", *(f"- {d}" for d in self.details)]
        if self.links:
            lines += ["", "Where to look:", *(f"  {label}: {url}" for label, url in self.links.items())]
        return redact("\n".join(lines))

    def html(self) -> str:
        def esc(text: str) -> str:  # redacted before escaping: "key": "value" becomes &quot;...&quot;
            return html.escape(redact(text))

        parts = [f"<p><b>{esc(self.summary)}</b></p>", f"<p>{esc(self.meaning)}</p>"]
        if self.details:
            parts.append("<ul>" + "".join(f"<li>{esc(d)}</li>" for d in self.details) + "</ul>")
        if self.links:
            items = "".join(
                f'<li>{esc(label)}: <a href="{esc(url)}">{esc(url)}</a></li>' for label, url in self.links.items()
            )
            parts.append(f"<p>Where to look:</p><ul>{items}</ul>")
        return redact("".join(parts))

    def payload(self, fmt: str = "json") -> dict[str, Any]:
        """The webhook body: Slack's {"text": ...}, or every field (with the text) as JSON."""
        text = f"*{self.subject()}*\n{self.text()}"
        if fmt == "slack":
            return {"text": text}
        return {
            "event": self.event,
            "pipeline": self.pipeline,
            "title": self.title,
            "summary": redact(self.summary),
            "meaning": redact(self.meaning),
            "details": [redact(d) for d in self.details],
            "links": {k: redact(v) for k, v in self.links.items()},
            "text": text,
        }

    def to_json(self, fmt: str = "json") -> bytes:
        return json.dumps(self.payload(fmt)).encode()


def failing_checks(reasons: list[str]) -> list[str]:
    """The FAIL lines of a verdict's reasons, without the prefix."""
    return [r[len("FAIL: ") :] for r in reasons if r.startswith("FAIL: ")]
