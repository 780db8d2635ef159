"""Transactional outbox: emails are rows written in the same transaction as the change they
report, and go out only after that transaction commits (``transaction.on_commit``). A crash or
an SMTP failure leaves the row pending; ``manage.py send_outbox`` retries it later.
"""

import datetime as dt
import logging
from email.mime.text import MIMEText

from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import OutboxEmail
from .validation import flatten

log = logging.getLogger(__name__)
STALE_CLAIM = dt.timedelta(minutes=10)


def queue(
    *, key: str, to: str, subject: str, body: str, ics: str = "", exam_id: int | None = None
) -> None:
    """Record an email inside the current transaction; send it once the transaction commits.

    ``key`` deduplicates: queueing the same key twice keeps the first email (one INSERT ... ON
    CONFLICT DO NOTHING, no extra round trip). The subject is flattened to one line: a header
    with a line break is refused by the mail library, and titles come from users.
    """
    email = OutboxEmail(
        dedupe_key=key, exam_id=exam_id, to_email=to, subject=flatten(subject), body=body, ics=ics
    )
    OutboxEmail.objects.bulk_create([email], ignore_conflicts=True)
    transaction.on_commit(lambda: deliver([key]))


def _send(email: OutboxEmail) -> None:
    message = EmailMessage(email.subject, email.body, to=[email.to_email])
    if email.ics:
        calendar = MIMEText(email.ics, "calendar", "utf-8")
        calendar.set_param("method", "CANCEL" if "METHOD:CANCEL" in email.ics else "REQUEST")
        calendar.add_header("Content-Disposition", "attachment", filename="exam.ics")
        message.attach(calendar)
    message.send()


def deliver(keys: list[str] | None = None) -> int:
    """Send pending emails (all, or those with the given dedupe keys); return how many were sent.

    Each row is claimed with a compare-and-swap UPDATE, so two workers never send it twice.
    Failures are recorded on the row, never raised: the change they report is committed.
    """
    pending = OutboxEmail.objects.filter(status=OutboxEmail.PENDING)
    if keys is not None:
        pending = pending.filter(dedupe_key__in=keys)
    sent = 0
    for email in pending.order_by("pk"):
        now = timezone.now()
        claimed = OutboxEmail.objects.filter(pk=email.pk, status=OutboxEmail.PENDING).update(
            status=OutboxEmail.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
        if not claimed:
            continue
        try:
            _send(email)
        except Exception as exc:  # any backend error: keep the row and retry later
            log.warning("outbox email %s failed: %s", email.pk, exc)
            final = email.attempts + 1 >= OutboxEmail.MAX_ATTEMPTS
            OutboxEmail.objects.filter(pk=email.pk).update(
                status=OutboxEmail.FAILED if final else OutboxEmail.PENDING,
                last_error=f"{type(exc).__name__}: {exc}",
            )
        else:
            OutboxEmail.objects.filter(pk=email.pk).update(
                status=OutboxEmail.SENT, sent_at=timezone.now(), last_error=""
            )
            sent += 1
    return sent


def release_stale_claims() -> int:
    """Put back rows whose sender died between claiming and finishing (e.g. a killed worker)."""
    cutoff = timezone.now() - STALE_CLAIM
    return OutboxEmail.objects.filter(status=OutboxEmail.SENDING, claimed_at__lt=cutoff).update(
        status=OutboxEmail.PENDING
    )
