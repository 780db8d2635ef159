"""The only authentication backend: instructor passwords, throttled.

Django's ``authenticate()`` is what both the staff sign-in page and the Django admin login call,
so the lockout cannot be side-stepped through ``/admin/login/``: the attempt is counted (see
``booking.throttle``) before the password hasher runs, and refused unchecked when over a limit.
A refusal raises ``PermissionDenied`` (``authenticate()`` then stops and returns None) and
leaves its message on ``request.throttle_refusal`` for the sign-in form to show.
"""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from . import throttle


def normalize(email: str) -> str:
    return email.strip().lower()


class PasswordBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        account = normalize(username or kwargs.get("email") or "")
        if request is None or not account or password is None:
            return None  # every password sign-in comes with a request to count it against
        try:
            attempt = throttle.admit(request, "password", account=account)
        except throttle.Refused as refusal:
            request.throttle_refusal = refusal.message
            raise PermissionDenied(refusal.message) from None
        user = super().authenticate(request, username=account, password=password)
        if user is None or not user.is_staff:
            return None
        attempt.succeeded()
        return user
