"""Signing in and out. Students: emailed code or link, or an invite code. Instructors: password.

Every sign-in path is throttled (``booking.throttle``); a refused attempt answers 429 with the
throttle's message.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN, PasswordResetConfirmView
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import signin, throttle
from ..access import SCOPE, exam_scope
from ..forms import CodeForm, EmailForm, InviteForm, StaffLoginForm

BACKEND = settings.AUTHENTICATION_BACKENDS[0]


def _sign_in(request, user, *, exam_id: int | None = None):
    """Sign ``user`` in. ``exam_id``: an invite code's sign-in, which reaches that exam only
    (added to the exams this session already reaches as the same user)."""
    same_user = request.user.is_authenticated and request.user.pk == user.pk
    reach = exam_scope(request) if same_user else []
    login(request, user, backend=BACKEND)
    if exam_id is None or (same_user and reach is None):
        request.session.pop(SCOPE, None)
    else:
        request.session[SCOPE] = sorted({*reach, exam_id})
    return redirect("home")


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    return redirect("staff-dashboard" if request.user.is_staff else "student-exams")


def request_code(request):
    form = EmailForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            signin.request_code(
                request, form.cleaned_data["email"], link_base=settings.SITE_URL + "/login/link/"
            )
        except throttle.Refused as exc:
            messages.error(request, exc.message)
            return render(request, "booking/login.html", {"form": form}, status=exc.status)
        return redirect("login-code")
    if form.errors:
        status = 400
    return render(request, "booking/login.html", {"form": form}, status=status)


def enter_code(request):
    email = request.session.get(signin.SESSION_EMAIL)
    if not email:
        return redirect("login")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = signin.verify_code(request, form.cleaned_data["code"])
        except (throttle.Refused, signin.CodeGone) as exc:
            form.add_error("code", exc.message)
            status = exc.status
        else:
            if user is not None:
                return _sign_in(request, user)
            form.add_error(
                "code",
                "That code is wrong, used or expired. "
                "Check the newest email or ask for a new code.",
            )
    if form.errors and status == 200:
        status = 400
    return render(request, "booking/login_code.html", {"form": form, "email": email}, status=status)


def follow_link(request, token):
    """GET only shows a Continue button (mail scanners follow links); POST signs in."""
    try:
        if request.method == "POST":
            user = signin.consume_link(request, token)
            if user is not None:
                return _sign_in(request, user)
            found = None
        else:
            found = signin.link_token(request, token)
    except throttle.Refused as exc:
        messages.error(request, exc.message)
        return render(request, "booking/login_link.html", {"email": None}, status=exc.status)
    return render(
        request,
        "booking/login_link.html",
        {"email": found.user.email if found else None},
        status=200 if found else 410,
    )


def redeem_invite(request):
    form = InviteForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            enrollment = signin.redeem_invite(request, form.cleaned_data["code"])
        except throttle.Refused as exc:
            form.add_error("code", exc.message)
            status = exc.status
        else:
            if enrollment is not None:
                return _sign_in(request, enrollment.student, exam_id=enrollment.exam_id)
            form.add_error("code", "This invite code is unknown, used or expired.")
    if form.errors and status == 200:
        status = 400
    return render(request, "booking/login_invite.html", {"form": form}, status=status)


def staff_login(request):
    form = StaffLoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user = authenticate(request, email=data["email"], password=data["password"])
        if user is not None:
            return _sign_in(request, user)
        refusal = getattr(request, "throttle_refusal", None)
        form.add_error(None, refusal or "Wrong email or password.")
        status = 429 if refusal else 400
    elif form.errors:
        status = 400
    return render(request, "booking/staff_login.html", {"form": form}, status=status)


class StaffSetupView(PasswordResetConfirmView):
    """The one-time link printed by ``manage.py bootstrap``: choose a password, get signed in.
    Trying a link counts against the client's throttle, like every other sign-in path."""

    template_name = "booking/staff_setup.html"
    post_reset_login = True
    post_reset_login_backend = BACKEND

    def dispatch(self, *args, **kwargs):
        first_visit = kwargs.get("token") != INTERNAL_RESET_SESSION_TOKEN
        attempt = None
        if first_visit:
            try:
                attempt = throttle.admit(self.request, "setup")
            except throttle.Refused as exc:
                messages.error(self.request, exc.message)
                context = {"validlink": False}
                return render(self.request, self.template_name, context, status=exc.status)
        response = super().dispatch(*args, **kwargs)
        # A valid link redirects to the form under the internal "set-password" token.
        if attempt is not None and INTERNAL_RESET_SESSION_TOKEN in response.get("Location", ""):
            attempt.succeeded()
        return response

    def get_success_url(self):
        messages.success(self.request, "Password set. You are signed in.")
        return reverse("staff-dashboard")


@require_POST
def sign_out(request):
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("login")


@login_required
def account(request):
    """The JSON API token: shown once after (re)generation. Only a full sign-in (emailed code
    or link, password) may make one: an invite code's sign-in reaches one exam only."""
    limited = exam_scope(request) is not None
    token = None
    if request.method == "POST":
        if limited:
            raise PermissionDenied(
                "Sign in with the code emailed to you to create an API token "
                "(an invite code signs in for one exam only)."
            )
        token = signin.issue_api_token(request.user)
    has_token = hasattr(request.user, "api_token")
    context = {"token": token, "has_token": has_token, "limited": limited}
    return render(request, "booking/account.html", context)


def csrf_failure(request, reason=""):
    """A readable page instead of Django's technical 403 when a form token is missing or old."""
    return render(request, "403_csrf.html", status=403)
