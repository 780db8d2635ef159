"""Signing in without passwords (students) and with passwords plus lockout (instructors).

Students: an emailed one-time code (typed in) and link. The link opens a "Continue" page and is
consumed only by its POST, because mail scanners follow links. Printed invite codes are the
fallback. Only keyed hashes of codes, links and tokens are stored. The response to a code
request never reveals whether an address is on a roster.
"""

import datetime as dt
import hmac
import secrets

from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import outbox, throttle
from .hashing import digest
from .models import ApiToken, InviteCode, LoginToken, User

CODE_TTL = dt.timedelta(minutes=15)
CODES_PER_HOUR = 5
STAFF_FAILURES = 5
STAFF_LOCKOUT_SECONDS = 15 * 60


class Throttled(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def normalize(email: str) -> str:
    return email.strip().lower()


def _student(email: str) -> User | None:
    return (
        User.objects.filter(
            email=normalize(email), is_active=True, is_staff=False, enrollments__isnull=False
        )
        .distinct()
        .first()
    )


def request_code(email: str, *, link_base: str) -> None:
    """Email a code and a link if ``email`` is a roster student's; silent otherwise.

    Limited to CODES_PER_HOUR per address (whether or not it is on a roster).
    """
    if throttle.hit(f"code:{normalize(email)}", 3600) > CODES_PER_HOUR:
        raise Throttled("Too many codes were requested for this address; try again in an hour.")
    user = _student(email)
    if user is None:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    link = secrets.token_urlsafe(32)
    with transaction.atomic():
        LoginToken.objects.filter(user=user, used_at__isnull=True).update(used_at=timezone.now())
        token = LoginToken.objects.create(
            user=user,
            code_hash=digest(code),
            link_hash=digest(link),
            expires_at=timezone.now() + CODE_TTL,
        )
        minutes = int(CODE_TTL.total_seconds() // 60)
        outbox.queue(
            key=f"login-{token.pk}",
            to=user.email,
            subject=f"Your sign-in code: {code}",
            body=(
                f"Your sign-in code for the exam slot booking is {code}.\n\n"
                f"Or open this link and press Continue:\n{link_base}{link}/\n\n"
                f"The code and the link work once, for {minutes} minutes. If you did not ask "
                "for them, ignore this email.\n"
            ),
        )


def _consume(token: LoginToken) -> bool:
    """Mark the token used (compare-and-swap: a second use, even a concurrent one, fails)."""
    return bool(
        LoginToken.objects.filter(pk=token.pk, used_at__isnull=True).update(used_at=timezone.now())
    )


def _live_tokens():
    return LoginToken.objects.select_related("user").filter(
        used_at__isnull=True, expires_at__gt=timezone.now(), user__is_active=True
    )


def verify_code(email: str, code: str) -> User | None:
    token = _live_tokens().filter(user__email=normalize(email)).order_by("-created_at").first()
    if token is None:
        return None
    if token.attempts >= LoginToken.MAX_ATTEMPTS:
        _consume(token)
        return None
    LoginToken.objects.filter(pk=token.pk).update(attempts=F("attempts") + 1)
    if hmac.compare_digest(token.code_hash, digest(code.strip())) and _consume(token):
        return token.user
    return None


def link_token(link: str) -> LoginToken | None:
    """The live token behind a link, without consuming it (for the GET 'Continue' page)."""
    return _live_tokens().filter(link_hash=digest(link)).first()


def consume_link(link: str) -> User | None:
    token = link_token(link)
    return token.user if token is not None and _consume(token) else None


def new_invite_code(user: User, expires_at: dt.datetime) -> str:
    """Create a single-use invite code (80 random bits, shown as XXXX-XXXX-XXXX-XXXX)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I look-alikes
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    InviteCode.objects.create(user=user, code_hash=digest(code), expires_at=expires_at)
    return code


def redeem_invite(code: str) -> User | None:
    normalized = code.strip().upper().replace(" ", "")
    invite = (
        InviteCode.objects.select_related("user")
        .filter(code_hash=digest(normalized), used_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if invite is None or not invite.user.is_active:
        return None
    used = InviteCode.objects.filter(pk=invite.pk, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    return invite.user if used else None


def staff_login(request, email: str, password: str) -> User | None:
    """Password sign-in for instructors; 5 failures within a 15-minute window lock the account
    until the window ends (counted in the database, so across all workers)."""
    key = f"staff-failures:{normalize(email)}"
    if throttle.count(key, STAFF_LOCKOUT_SECONDS) >= STAFF_FAILURES:
        raise Throttled(
            "Too many failed sign-ins for this account; wait up to 15 minutes and try again."
        )
    user = authenticate(request, email=normalize(email), password=password)
    if user is None or not user.is_staff:
        throttle.hit(key, STAFF_LOCKOUT_SECONDS)
        return None
    throttle.reset(key)
    return user


def issue_api_token(user: User) -> str:
    """A new bearer token for the JSON API (replaces the old one); shown once."""
    key = secrets.token_urlsafe(32)
    ApiToken.objects.update_or_create(user=user, defaults={"key_hash": digest(key)})
    return key


def api_user(key: str) -> User | None:
    token = ApiToken.objects.select_related("user").filter(key_hash=digest(key)).first()
    return token.user if token is not None and token.user.is_active else None
