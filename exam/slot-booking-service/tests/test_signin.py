"""Signing in: emailed code (bound to the asking browser) and link (consumed only by POST),
invite codes, instructor passwords with lockout, the first instructor's set-up link, API tokens.
The throttle itself (limits, ordering, device cookies, parallel requests) is test_throttle*.py."""

import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from booking import services, signin
from booking.models import LoginToken, User
from harness import SERVICE_DIR, factories


def request_code(client, email: str, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("login"), {"email": email})


def emailed(pattern: str) -> str:
    return re.search(pattern, mail.outbox[-1].body).group(1)


def enter(client, code: str):
    return client.post(reverse("login-code"), {"code": code}, follow=True)


def test_code_login(client, enrollment, django_capture_on_commit_callbacks):
    response = request_code(
        client, enrollment.student.email.upper(), django_capture_on_commit_callbacks
    )
    assert response.url == reverse("login-code")
    code = emailed(r"code for the exam slot booking is (\d{6})")
    response = enter(client, code)
    assert response.wsgi_request.user == enrollment.student
    client.logout()
    client.post(reverse("login"), {"email": enrollment.student.email})  # the session again
    assert not enter(client, code).wsgi_request.user.is_authenticated  # it works once


def test_unknown_address_gets_the_same_answer_and_no_email(
    client, enrollment, django_capture_on_commit_callbacks
):
    response = request_code(client, "stranger@example.org", django_capture_on_commit_callbacks)
    assert response.status_code == 302 and response.url == reverse("login-code")
    assert mail.outbox == []


def test_instructors_get_no_code(client, instructor, django_capture_on_commit_callbacks):
    request_code(client, instructor.email, django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_a_code_works_only_in_the_browser_that_asked_for_it(
    enrollment, django_capture_on_commit_callbacks
):
    """A stranger who asks for a code for the student's address gets nothing usable: the
    student's code does not work in the stranger's session, and the stranger's request does
    not invalidate the student's code (no sabotage)."""
    student, stranger = Client(), Client()
    request_code(student, enrollment.student.email, django_capture_on_commit_callbacks)
    code = emailed(r"is (\d{6})")
    request_code(stranger, enrollment.student.email, django_capture_on_commit_callbacks)
    assert LoginToken.objects.filter(used_at__isnull=True).count() == 2
    assert not enter(stranger, code).wsgi_request.user.is_authenticated
    assert enter(student, code).wsgi_request.user == enrollment.student


def test_wrong_codes_are_limited(client, enrollment, django_capture_on_commit_callbacks):
    request_code(client, enrollment.student.email, django_capture_on_commit_callbacks)
    code = emailed(r"is (\d{6})")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(LoginToken.MAX_ATTEMPTS):
        response = client.post(reverse("login-code"), {"code": wrong})
        assert response.status_code == 400 and "That code is wrong" in response.content.decode()
    response = client.post(reverse("login-code"), {"code": code})
    assert response.status_code == 429  # the right code no longer works after 5 wrong ones
    assert "no longer works" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


def test_code_requests_are_rate_limited(client, enrollment, django_capture_on_commit_callbacks):
    limit = signin.throttle.policy("code-request").per_account_client
    for _ in range(limit):
        assert (
            request_code(client, "x@example.org", django_capture_on_commit_callbacks).status_code
            == 302
        )
    response = request_code(client, "x@example.org", django_capture_on_commit_callbacks)
    assert response.status_code == 429
    assert "Too many codes" in response.content.decode()
    other_address = Client(REMOTE_ADDR="198.51.100.7")  # someone else is not locked out
    assert (
        request_code(other_address, "x@example.org", django_capture_on_commit_callbacks).status_code
        == 302
    )


def test_link_get_does_not_sign_in_post_does_once(
    client, enrollment, django_capture_on_commit_callbacks
):
    request_code(client, enrollment.student.email, django_capture_on_commit_callbacks)
    path = emailed(r"http://[^/]+(/login/link/\S+/)")
    other_browser = Client()  # opening the mail elsewhere (a phone) works: the link is the proof
    for _ in range(3):  # a mail scanner following the link consumes nothing
        page = other_browser.get(path)
        assert page.status_code == 200 and b"Continue" in page.content
        assert not page.wsgi_request.user.is_authenticated
    response = other_browser.post(path)
    assert response.status_code == 302
    other_browser.logout()
    assert other_browser.post(path).status_code == 410
    assert other_browser.get(path).status_code == 410


def test_invite_codes(client, exam, students, instructor):
    pairs = {e.student.email: code for e, code in services.issue_invites(exam, actor=instructor)}
    code = pairs[students[1].student.email]
    response = client.post(reverse("login-invite"), {"code": code.lower()}, follow=True)
    assert response.wsgi_request.user == students[1].student
    client.logout()
    response = client.post(reverse("login-invite"), {"code": code})
    assert response.status_code == 400
    assert "unknown, used or expired" in response.content.decode()


def test_staff_password_login_and_lockout(db):
    factories.make_instructor("prof@example.org", password="a long passphrase 42")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    limit = signin.throttle.policy("password").per_account_client
    for _ in range(limit):
        response = attacker.post(
            reverse("staff-login"), {"email": "prof@example.org", "password": "nope"}
        )
        assert (
            response.status_code == 400 and "Wrong email or password" in response.content.decode()
        )
    right = {"email": "prof@example.org", "password": "a long passphrase 42"}
    response = attacker.post(reverse("staff-login"), right)
    assert response.status_code == 429 and "Too many failed sign-ins" in response.content.decode()
    # ... but the stranger at 203.0.113.9 locked out only themselves:
    response = Client(REMOTE_ADDR="198.51.100.20").post(reverse("staff-login"), right)
    assert response.status_code == 302 and response.url == reverse("home")


def test_staff_login_success_resets_failures(client, db):
    factories.make_instructor("prof@example.org", password="a long passphrase 42")
    for _ in range(signin.throttle.policy("password").per_account_client - 1):
        client.post(reverse("staff-login"), {"email": "prof@example.org", "password": "nope"})
    right = {"email": "PROF@example.org", "password": "a long passphrase 42"}
    assert client.post(reverse("staff-login"), right).url == reverse("home")
    client.logout()
    client.post(reverse("staff-login"), {"email": "prof@example.org", "password": "nope"})
    assert client.post(reverse("staff-login"), right).url == reverse("home")


def test_bootstrap_needs_the_first_address_and_sets_the_password_once(client, db):
    with pytest.raises(CommandError, match="Choose the first instructor's"):
        call_command("bootstrap", stdout=StringIO())  # no guessable default address
    assert not User.objects.exists()
    out = StringIO()
    call_command("bootstrap", first="Head@Uni.example", stdout=out)
    first = User.objects.get()
    assert first.email == "head@uni.example" and first.is_superuser
    path = re.search(r"http://[^/]+(/staff/setup/\S+/)", out.getvalue()).group(1)
    form = client.get(path, follow=True)
    assert b"Choose your instructor password" in form.content
    password = "correct horse battery staple"
    response = client.post(
        form.wsgi_request.path, {"new_password1": password, "new_password2": password}, follow=True
    )
    assert response.wsgi_request.user == first
    assert User.objects.get(pk=first.pk).check_password(password)
    client.logout()
    assert b"This link no longer works" in client.get(path, follow=True).content
    out = StringIO()
    call_command("bootstrap", first="other@uni.example", stdout=out)  # ignored: one exists
    assert "nothing to do" in out.getvalue() and User.objects.count() == 1
    call_command("bootstrap", email="second@example.org", stdout=StringIO())
    second = User.objects.get(email="second@example.org")
    assert second.is_staff and not second.is_superuser and not second.has_usable_password()


def test_api_token_replaces_the_old_one(enrollment, rf):
    first = signin.issue_api_token(enrollment.student)
    second = signin.issue_api_token(enrollment.student)
    request = rf.get("/api/exams")
    assert signin.api_user(request, first) is None
    assert signin.api_user(request, second) == enrollment.student


def test_production_settings_hash_passwords_with_argon2():
    code = (
        "from django.conf import settings; from django.contrib.auth.hashers import make_password;"
        "print(make_password('x').split('$')[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=SERVICE_DIR,
        capture_output=True,
        text=True,
        check=True,
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings_prod",
            "DJANGO_SECRET_KEY": "k" * 60,
            "DJANGO_ALLOWED_HOSTS": "exam.example.org",
            "DATABASE_URL": "sqlite://:memory:",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert out.stdout.strip() == "argon2"


@pytest.mark.parametrize("path", ["/login/", "/login/invite/", "/staff/login/"])
def test_sign_in_pages_render(client, db, path):
    assert client.get(path).status_code == 200
