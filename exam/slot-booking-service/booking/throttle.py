"""One throttle for every way to sign in: instructor passwords (the staff page and Django admin
alike, through ``booking.backends``), emailed codes, code requests, sign-in links, invite codes,
the instructor set-up link, and API tokens.

Counting happens before the secret is checked. ``admit`` adds one to each counter of the
attempt in a single atomic statement per counter (INSERT ... ON CONFLICT DO UPDATE ... RETURNING,
on SQLite and PostgreSQL), and the attempt is refused unchecked when a counter is over its limit.
So however many requests race, at most ``limit`` of them per counter get checked: the counter
itself is the lock. A successful attempt gives its counts back (``Attempt.succeeded``), so
legitimate sign-ins never use up a limit, and resets the counter of its own account and client.

Which counters, per path and window (``settings.THROTTLE``):

* a client address alone (``per_client``: one address guessing across many accounts);
* an account from one client address (``per_account_client``);
* an account from all untrusted clients together (``per_account``: many addresses guessing
  one account), counted only for attempts that passed the two counters before it, so one
  address adds at most ``per_account_client`` to it: a stranger at one address cannot lock
  anybody else out;
* a trusted device instead of all of these (``per_device``). After a successful sign-in the
  browser gets a signed device cookie for that account (OWASP, "Slow Down Online Guessing
  Attacks with Device Cookies"); its attempts count only against its own counter, so not even
  an attacker with many addresses can lock an account out of a browser it was used in before.

Client addresses: ``REMOTE_ADDR``, or behind ``TRUSTED_PROXY_COUNT`` reverse proxies the address
the first of them saw (from the right of X-Forwarded-For). IPv6 addresses count per /64, the
block one subscriber usually gets. Windows are fixed (unix time // length): across a window
boundary a limit can be used twice.
"""

import dataclasses
import hashlib
import ipaddress
import secrets
import time

from django.conf import settings
from django.core import signing
from django.db import connection
from django.db.models import F

from .models import ThrottleWindow

DEVICE_COOKIE = "device"
DEVICE_SALT = "booking.throttle.device"
DEVICE_MAX_AGE = 180 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class Policy:
    seconds: int
    per_client: int
    per_account_client: int | None = None
    per_account: int | None = None
    per_device: int | None = None
    message: str = "Too many attempts; try again later."


def policy(path: str) -> Policy:
    return Policy(**settings.THROTTLE[path])


class Refused(Exception):
    """An attempt the throttle refused unchecked (HTTP 429)."""

    status = 429

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- counters --------------------------------------------------------------------------------


def _table() -> str:
    return connection.ops.quote_name(ThrottleWindow._meta.db_table)


def _bucket(seconds: int, now: float) -> int:
    return int(now) // seconds


def hit(name: str, seconds: int, now: float | None = None) -> int:
    """Count one event for ``name`` in the current window; return the new count (atomic).

    Runs in autocommit: a count must survive whatever the caller does next.
    """
    now = time.time() if now is None else now
    bucket = _bucket(seconds, now)
    table = _table()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE expires <= %s", [int(now)])  # noqa: S608
        cursor.execute(
            f"INSERT INTO {table} (name, bucket, hits, expires) VALUES (%s, %s, 1, %s) "  # noqa: S608
            f"ON CONFLICT (name, bucket) DO UPDATE SET hits = {table}.hits + 1 RETURNING hits",
            [name, bucket, (bucket + 1) * seconds],
        )
        return cursor.fetchone()[0]


def give_back(name: str, seconds: int, now: float) -> None:
    """Undo one ``hit`` made at ``now`` (nothing if that window has ended)."""
    ThrottleWindow.objects.filter(name=name, bucket=_bucket(seconds, now), hits__gt=0).update(
        hits=F("hits") - 1
    )


def count(name: str, seconds: int) -> int:
    row = ThrottleWindow.objects.filter(name=name, bucket=_bucket(seconds, time.time())).first()
    return row.hits if row else 0


def reset(name: str) -> None:
    ThrottleWindow.objects.filter(name=name).delete()


# --- who is asking ---------------------------------------------------------------------------


def client_address(request) -> str:
    """The client's address (IPv6: its /64), or "unknown"."""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= proxies:
            address = hops[-proxies]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def _short(text: str) -> str:
    """Counter names hold a hash of the account, not the address itself."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def trusted_device(request, account: str) -> str | None:
    """The device id of a valid device cookie of ``account`` in this request, else None."""
    value = request.COOKIES.get(DEVICE_COOKIE)
    if not value:
        return None
    try:
        owner, device = signing.loads(value, salt=DEVICE_SALT, max_age=DEVICE_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return device if owner == account else None


def trust_after_sign_in(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: every successful sign-in (password, admin, code, link,
    invite, set-up link) makes this browser a trusted device of the account."""
    if request is not None:
        request.trusted_device_for = user.email


class DeviceCookieMiddleware:
    """Sets the device cookie after a successful sign-in (see ``trust_after_sign_in``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        account = getattr(request, "trusted_device_for", None)
        if account:
            value = signing.dumps([account, secrets.token_urlsafe(16)], salt=DEVICE_SALT)
            response.set_cookie(
                DEVICE_COOKIE,
                value,
                max_age=DEVICE_MAX_AGE,
                httponly=True,
                secure=settings.SESSION_COOKIE_SECURE,
                samesite="Lax",
            )
        return response


# --- attempts --------------------------------------------------------------------------------


@dataclasses.dataclass
class Attempt:
    counted: list[str]
    own: str | None  # the counter of this account from this client or device: reset on success
    seconds: int
    at: float

    def succeeded(self) -> None:
        for name in self.counted:
            if name == self.own:
                reset(name)
            else:
                give_back(name, self.seconds, self.at)


def admit(request, path: str, account: str | None = None) -> Attempt:
    """Count an attempt on ``path`` (for ``account``, if the input names one) before checking
    it; raise ``Refused`` when a counter is over its limit. Call ``succeeded()`` on success."""
    rules = policy(path)
    now = time.time()
    device = trusted_device(request, account) if account and rules.per_device else None
    own = None
    if device is not None:
        own = f"{path}:device:{_short(account)}:{device}"
        chain = [(own, rules.per_device)]
    else:
        client = client_address(request)
        chain = [(f"{path}:client:{client}", rules.per_client)]
        if account is not None and rules.per_account_client is not None:
            own = f"{path}:account-client:{_short(account)}:{client}"
            chain.append((own, rules.per_account_client))
        if account is not None and rules.per_account is not None:
            chain.append((f"{path}:account:{_short(account)}", rules.per_account))
    counted = []
    for name, limit in chain:
        counted.append(name)
        if hit(name, rules.seconds, now) > limit:
            raise Refused(rules.message)
    return Attempt(counted, own, rules.seconds, now)


def refuse_if_blocked(request, path: str) -> None:
    """For API tokens: refuse a client with too many wrong tokens in the window."""
    rules = policy(path)
    if count(f"{path}:client:{client_address(request)}", rules.seconds) >= rules.per_client:
        raise Refused(rules.message)


def failed(request, path: str) -> None:
    hit(f"{path}:client:{client_address(request)}", policy(path).seconds)
