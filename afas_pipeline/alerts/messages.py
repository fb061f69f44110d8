"""What an alert says, as plain values: one line for a chat channel, a few lines for an e-mail, and the same
facts as fields for whatever reads the webhook.

Only what Dagster knows about a run or a check goes in: job, run id, partition, step names, the first line of
an error and asset names. Our errors carry counts and hashed keys, never an address or a name; each is still
cut to one line and `MAX_ERROR_CHARS`, control characters escaped, so nothing long or multi-line a record
might hold can ride along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage

from afas_pipeline.lib.text import printable

#: The one line of an error an alert carries is cut here.
MAX_ERROR_CHARS = 300
#: Names listed in one line before "+N more".
MAX_LISTED = 3
PRODUCT = "afas-pipeline"


@dataclass(frozen=True)
class Alert:
    """`text` is the one-line summary (a chat message, the e-mail's subject plus its link), `lines` the
    e-mail's body, `fields` the structured facts sent along in the webhook's JSON."""

    kind: str
    text: str
    subject: str
    lines: tuple[str, ...]
    fields: dict = field(default_factory=dict)

    def webhook_payload(self) -> dict:
        """Slack, Mattermost and Teams incoming webhooks show `text`; the rest is for other readers."""
        return {"text": self.text, "kind": self.kind, **self.fields}

    def email(self, sender: str, recipients: Sequence[str]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = self.subject
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message.set_content("\n".join(self.lines) + "\n")
        return message


@dataclass(frozen=True)
class FailedStep:
    step: str
    error: str  # one line, already cut


def error_line(text: str | None) -> str:
    """The first non-empty line of an error, control characters escaped, at most MAX_ERROR_CHARS long."""
    first = next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")
    first = printable(first)
    return first if len(first) <= MAX_ERROR_CHARS else first[: MAX_ERROR_CHARS - 1] + "…"


def listed(names: Sequence[str]) -> str:
    """`a, b, c (+2 more)`."""
    more = len(names) - MAX_LISTED
    return ", ".join(names[:MAX_LISTED]) + (f" (+{more} more)" if more > 0 else "")


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_failure_alert(*, job: str, run_id: str, partition: str | None, steps: Sequence[FailedStep],
                      run_error: str | None, run_url: str) -> Alert:
    """A failed run: which job and window, which steps failed and why (the first one's error in the
    one-line summary), and where to open it."""
    where = f" for partition {partition}" if partition else ""
    if steps:
        more = f" (+{len(steps) - 1} more failed steps)" if len(steps) > 1 else ""
        cause = f"step {steps[0].step}{more}: {steps[0].error}"
    else:
        cause = error_line(run_error) or "the run failed before any step did"
    subject = f"{PRODUCT}: {job} failed{where}"
    lines = [f"Job: {job}", f"Partition: {partition or '-'}", f"Run: {run_id}"]
    if steps:
        lines += ["Failed steps:", *(f"  {s.step}: {s.error}" for s in steps)]
    else:
        lines.append(f"Error: {cause}")
    lines.append(f"Open the run: {run_url}")
    return Alert(
        kind="run_failure",
        text=f"{subject}: {cause} | {run_url}",
        subject=subject,
        lines=tuple(lines),
        fields={"job": job, "run_id": run_id, "partition": partition, "run_url": run_url,
                "steps": [{"step": s.step, "error": s.error} for s in steps],
                **({} if steps else {"error": cause})},
    )


@dataclass(frozen=True)
class Overdue:
    """A 15-minute asset whose freshness check failed."""

    asset: str
    last_success: float | None  # when it last materialised (UTC timestamp), None if never
    last_partition: str | None  # the window of that materialisation
    url: str


def freshness_alert(overdue: Sequence[Overdue], threshold_minutes: int) -> Alert:
    names = [o.asset for o in overdue]
    noun = "asset has" if len(names) == 1 else "assets have"
    first = overdue[0]
    last = (f"last success {utc(first.last_success)}, window {first.last_partition}"
            if first.last_success is not None else "never succeeded")
    subject = f"{PRODUCT}: {len(names)} 15-minute {noun} not succeeded for {threshold_minutes} minutes"
    lines = [f"These 15-minute assets have not succeeded for {threshold_minutes} minutes:"]
    for o in overdue:
        when = (f"last success {utc(o.last_success)} (window {o.last_partition})" if o.last_success is not None
                else "never succeeded")
        lines.append(f"  {o.asset}: {when}: {o.url}")
    return Alert(
        kind="freshness_overdue",
        text=f"{subject}: {listed(names)} ({last}) | {first.url}",
        subject=subject,
        lines=tuple(lines),
        fields={"threshold_minutes": threshold_minutes,
                "assets": [{"asset": o.asset, "last_success": utc(o.last_success) if o.last_success else None,
                            "last_partition": o.last_partition, "url": o.url} for o in overdue]},
    )


def freshness_recovered_alert(assets: Sequence[str], urls: Sequence[str]) -> Alert:
    noun = "asset is" if len(assets) == 1 else "assets are"
    subject = f"{PRODUCT}: {len(assets)} 15-minute {noun} up to date again"
    return Alert(
        kind="freshness_recovered",
        text=f"{subject}: {listed(list(assets))} | {urls[0]}",
        subject=subject,
        lines=("Up to date again (a window succeeded, the freshness check passed):",
               *(f"  {a}: {u}" for a, u in zip(assets, urls))),
        fields={"assets": [{"asset": a, "url": u} for a, u in zip(assets, urls)]},
    )
