"""Signing in and out. Students: emailed code or link, or an invite code. Instructors: password."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordResetConfirmView
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import signin
from ..forms import CodeForm, EmailForm, InviteForm, StaffLoginForm

BACKEND = "django.contrib.auth.backends.ModelBackend"


def _sign_in(request, user):
    login(request, user, backend=BACKEND)
    return redirect("home")


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    return redirect("staff-dashboard" if request.user.is_staff else "student-exams")


def request_code(request):
    form = EmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = signin.normalize(form.cleaned_data["email"])
        try:
            signin.request_code(email, link_base=settings.SITE_URL + "/login/link/")
        except signin.Throttled as exc:
            messages.error(request, exc.message)
            return render(request, "booking/login.html", {"form": form}, status=429)
        request.session["login_email"] = email
        return redirect("login-code")
    return render(request, "booking/login.html", {"form": form})


def enter_code(request):
    email = request.session.get("login_email")
    if not email:
        return redirect("login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = signin.verify_code(email, form.cleaned_data["code"])
        if user is not None:
            return _sign_in(request, user)
        form.add_error(
            "code",
            "That code is wrong, used or expired. Check the newest email or ask for a new code.",
        )
    return render(request, "booking/login_code.html", {"form": form, "email": email})


def follow_link(request, token):
    """GET only shows a Continue button (mail scanners follow links); POST signs in."""
    if request.method == "POST":
        user = signin.consume_link(token)
        if user is not None:
            return _sign_in(request, user)
    found = signin.link_token(token)
    return render(
        request,
        "booking/login_link.html",
        {"email": found.user.email if found else None},
        status=200 if found else 410,
    )


def redeem_invite(request):
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = signin.redeem_invite(form.cleaned_data["code"])
        if user is not None:
            return _sign_in(request, user)
        form.add_error("code", "This invite code is unknown, used or expired.")
    return render(request, "booking/login_invite.html", {"form": form})


def staff_login(request):
    form = StaffLoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = signin.staff_login(
                request, form.cleaned_data["email"], form.cleaned_data["password"]
            )
        except signin.Throttled as exc:
            form.add_error(None, exc.message)
            status = 429
        else:
            if user is not None:
                return _sign_in(request, user)
            form.add_error(None, "Wrong email or password.")
    return render(request, "booking/staff_login.html", {"form": form}, status=status)


class StaffSetupView(PasswordResetConfirmView):
    """The one-time link printed by ``manage.py bootstrap``: choose a password, get signed in."""

    template_name = "booking/staff_setup.html"
    post_reset_login = True
    post_reset_login_backend = BACKEND

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
    """The JSON API token: shown once after (re)generation."""
    token = None
    if request.method == "POST":
        token = signin.issue_api_token(request.user)
    has_token = hasattr(request.user, "api_token")
    return render(request, "booking/account.html", {"token": token, "has_token": has_token})


def csrf_failure(request, reason=""):
    """A readable page instead of Django's technical 403 when a form token is missing or old."""
    return render(request, "403_csrf.html", status=403)
