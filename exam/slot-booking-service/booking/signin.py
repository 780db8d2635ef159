"""Signing in without passwords (students); passwords are ``booking.backends``.

Students: an emailed one-time code (typed in) and link. The code works only in the browser
session that asked for it; the link opens a "Continue" page and is consumed only by its POST,
because mail scanners follow links. Printed invite codes are the fallback; each belongs to one
roster row and signs in for that exam only. Only keyed hashes of codes, links and tokens are
stored. The response to a code request never reveals whether an address is on a roster.

Every path counts its attempt in ``booking.throttle`` before checking anything.
"""

import datetime as dt
import hmac
import secrets

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import outbox, throttle
from .backends import normalize
from .hashing import digest
from .models import ApiToken, Enrollment, InviteCode, LoginToken, User

CODE_TTL = dt.timedelta(minutes=15)
SESSION_EMAIL = "login_email"
SESSION_BINDING = "login_binding"


class CodeGone(Exception):
    """This browser has no live code any more (used, expired, replaced or tried too often)."""

    status = 410
    message = "This code no longer works. Ask for a new code."


def _student(email: str) -> User | None:
    return (
        User.objects.filter(email=email, is_active=True, is_staff=False, enrollments__isnull=False)
        .distinct()
        .first()
    )


def request_code(request, email: str, *, link_base: str) -> None:
    """Email a code and a link if ``email`` is a roster student's; silent otherwise.

    The code is bound to this browser session; a newer request from the same session replaces
    the older code, requests from other sessions (someone else's) leave it alone.
    """
    email = normalize(email)
    throttle.admit(request, "code-request", account=email)  # counted even for unknown addresses
    binding = request.session.get(SESSION_BINDING) or secrets.token_urlsafe(16)
    request.session[SESSION_BINDING] = binding
    request.session[SESSION_EMAIL] = email
    user = _student(email)
    if user is None:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    link = secrets.token_urlsafe(32)
    with transaction.atomic():
        LoginToken.objects.filter(user=user, binding=digest(binding), used_at__isnull=True).update(
            used_at=timezone.now()
        )
        token = LoginToken.objects.create(
            user=user,
            binding=digest(binding),
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


def verify_code(request, code: str) -> User | None:
    """The student whose code this session asked for, if ``code`` is it.

    Each code allows LoginToken.MAX_ATTEMPTS tries, counted by a conditional UPDATE before the
    comparison, so parallel guesses cannot get more; then the code is dead (``Refused``, and
    ``CodeGone`` for every later try).
    """
    attempt = throttle.admit(request, "code")
    email, binding = request.session.get(SESSION_EMAIL), request.session.get(SESSION_BINDING)
    if not email or not binding:
        raise CodeGone
    token = (
        _live_tokens()
        .filter(user__email=email, binding=digest(binding))
        .order_by("-created_at")
        .first()
    )
    if token is None:
        raise CodeGone
    tries = LoginToken.objects.filter(
        pk=token.pk, used_at__isnull=True, attempts__lt=LoginToken.MAX_ATTEMPTS
    ).update(attempts=F("attempts") + 1)
    if not tries:
        _consume(token)
        raise throttle.Refused(
            "Too many wrong tries: this code no longer works. Ask for a new code."
        )
    if hmac.compare_digest(token.code_hash, digest(code.strip())) and _consume(token):
        attempt.succeeded()
        return token.user
    return None


def link_token(request, link: str) -> LoginToken | None:
    """The live token behind a link, without consuming it (for the GET 'Continue' page)."""
    attempt = throttle.admit(request, "link")
    token = _live_tokens().filter(link_hash=digest(link)).first()
    if token is not None:
        attempt.succeeded()
    return token


def consume_link(request, link: str) -> User | None:
    token = link_token(request, link)
    return token.user if token is not None and _consume(token) else None


def new_invite_code(enrollment: Enrollment, expires_at: dt.datetime) -> str:
    """Create a single-use invite code for one roster row (80 random bits, XXXX-XXXX-...)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I look-alikes
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    InviteCode.objects.create(enrollment=enrollment, code_hash=digest(code), expires_at=expires_at)
    return code


def redeem_invite(request, code: str) -> Enrollment | None:
    """The roster row an unused invite code belongs to (the code is used up), or None."""
    attempt = throttle.admit(request, "invite")
    normalized = code.strip().upper().replace(" ", "")
    invite = (
        InviteCode.objects.select_related("enrollment__student")
        .filter(code_hash=digest(normalized), used_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if invite is None or not invite.enrollment.student.is_active:
        return None
    used = InviteCode.objects.filter(pk=invite.pk, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    if not used:
        return None
    attempt.succeeded()
    return invite.enrollment


def issue_api_token(user: User) -> str:
    """A new bearer token for the JSON API (replaces the old one); shown once."""
    key = secrets.token_urlsafe(32)
    ApiToken.objects.update_or_create(user=user, defaults={"key_hash": digest(key)})
    return key


def api_user(request, key: str) -> User | None:
    """The owner of a bearer token. Tokens are 256 random bits, so they are not counted before
    the check (that would put two writes on every API call and refuse busy clients); a client
    that sent too many wrong ones is refused before the check."""
    throttle.refuse_if_blocked(request, "api-token")
    token = ApiToken.objects.select_related("user").filter(key_hash=digest(key)).first()
    if token is None or not token.user.is_active:
        throttle.failed(request, "api-token")
        return None
    return token.user
