"""Signing in: emailed code and link (consumed only by POST), invite codes, instructor passwords
with lockout, API tokens."""

import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from booking import services, signin
from booking.models import LoginToken, User
from harness import SERVICE_DIR, factories


def request_code(client, email: str, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("login"), {"email": email})


def emailed(pattern: str) -> str:
    return re.search(pattern, mail.outbox[-1].body).group(1)


def test_code_login(client, enrollment, django_capture_on_commit_callbacks):
    response = request_code(
        client, enrollment.student.email.upper(), django_capture_on_commit_callbacks
    )
    assert response.url == reverse("login-code")
    code = emailed(r"code for the exam slot booking is (\d{6})")
    response = client.post(reverse("login-code"), {"code": code}, follow=True)
    assert response.wsgi_request.user == enrollment.student
    assert signin.verify_code(enrollment.student.email, code) is None  # it works once


def test_unknown_address_gets_the_same_answer_and_no_email(
    client, enrollment, django_capture_on_commit_callbacks
):
    response = request_code(client, "stranger@example.org", django_capture_on_commit_callbacks)
    assert response.status_code == 302 and response.url == reverse("login-code")
    assert mail.outbox == []


def test_instructors_get_no_code(client, instructor, django_capture_on_commit_callbacks):
    request_code(client, instructor.email, django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_wrong_codes_are_limited(client, enrollment, django_capture_on_commit_callbacks):
    request_code(client, enrollment.student.email, django_capture_on_commit_callbacks)
    code = emailed(r"is (\d{6})")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(LoginToken.MAX_ATTEMPTS):
        response = client.post(reverse("login-code"), {"code": wrong})
        assert "That code is wrong" in response.content.decode()
    response = client.post(reverse("login-code"), {"code": code})
    assert response.status_code == 200  # the right code no longer works after 5 wrong ones
    assert not response.wsgi_request.user.is_authenticated


def test_code_requests_are_rate_limited(client, enrollment, django_capture_on_commit_callbacks):
    for _ in range(signin.CODES_PER_HOUR):
        assert (
            request_code(client, "x@example.org", django_capture_on_commit_callbacks).status_code
            == 302
        )
    response = request_code(client, "x@example.org", django_capture_on_commit_callbacks)
    assert response.status_code == 429
    assert "Too many codes" in response.content.decode()


def test_link_get_does_not_sign_in_post_does_once(
    client, enrollment, django_capture_on_commit_callbacks
):
    request_code(client, enrollment.student.email, django_capture_on_commit_callbacks)
    path = emailed(r"http://[^/]+(/login/link/\S+/)")
    for _ in range(3):  # a mail scanner following the link consumes nothing
        page = client.get(path)
        assert page.status_code == 200 and b"Continue" in page.content
        assert not page.wsgi_request.user.is_authenticated
    response = client.post(path)
    assert response.status_code == 302
    client.logout()
    assert client.post(path).status_code == 410
    assert client.get(path).status_code == 410


def test_invite_codes(client, exam, students, instructor):
    pairs = {e.student.email: code for e, code in services.issue_invites(exam, actor=instructor)}
    code = pairs[students[1].student.email]
    response = client.post(reverse("login-invite"), {"code": code.lower()}, follow=True)
    assert response.wsgi_request.user == students[1].student
    client.logout()
    response = client.post(reverse("login-invite"), {"code": code})
    assert "unknown, used or expired" in response.content.decode()


def test_staff_password_login_and_lockout(client, db):
    factories.make_instructor("prof@example.org", password="a long passphrase 42")
    for _ in range(signin.STAFF_FAILURES):
        response = client.post(
            reverse("staff-login"), {"email": "prof@example.org", "password": "nope"}
        )
        assert "Wrong email or password" in response.content.decode()
    response = client.post(
        reverse("staff-login"), {"email": "prof@example.org", "password": "a long passphrase 42"}
    )
    assert response.status_code == 429 and "Too many failed sign-ins" in response.content.decode()


def test_staff_login_success_resets_failures(client, db):
    factories.make_instructor("prof@example.org", password="a long passphrase 42")
    client.post(reverse("staff-login"), {"email": "prof@example.org", "password": "nope"})
    response = client.post(
        reverse("staff-login"), {"email": "PROF@example.org", "password": "a long passphrase 42"}
    )
    assert response.url == reverse("home")


def test_bootstrap_link_sets_the_password_once(client, db):
    out = StringIO()
    call_command("bootstrap", stdout=out)
    path = re.search(r"http://[^/]+(/staff/setup/\S+/)", out.getvalue()).group(1)
    form = client.get(path, follow=True)
    assert b"Choose your instructor password" in form.content
    password = "correct horse battery staple"
    response = client.post(
        form.wsgi_request.path, {"new_password1": password, "new_password2": password}, follow=True
    )
    assert response.wsgi_request.user.email == "instructor@example.org"
    assert User.objects.get(email="instructor@example.org").check_password(password)
    client.logout()
    assert b"This link no longer works" in client.get(path, follow=True).content
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert "nothing to do" in out.getvalue()
    call_command("bootstrap", email="second@example.org", stdout=StringIO())
    second = User.objects.get(email="second@example.org")
    assert second.is_staff and not second.is_superuser and not second.has_usable_password()


def test_api_token_replaces_the_old_one(enrollment):
    first = signin.issue_api_token(enrollment.student)
    second = signin.issue_api_token(enrollment.student)
    assert signin.api_user(first) is None and signin.api_user(second) == enrollment.student


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
