"""Every sign-in path under parallel attack, on SQLite and PostgreSQL: gunicorn with 4 worker
processes, 20 to 60 requests in flight at once. The throttle counts each attempt before checking
it, so exactly ``limit`` attempts per counter are checked however many race (a wrong answer:
400, or 410 for links), and all others are refused unchecked (429). A stranger's attack locks
out neither someone at another address nor a browser that signed in to the account before.

Requests name their client address in X-Forwarded-For (the server trusts one proxy), so one
machine plays many clients. Passwords are hashed with PBKDF2 at one iteration here: the hasher
does not matter to the throttle, and Argon2 would make this test cost several CPU-seconds more.
"""

import itertools
import re
import secrets
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from harness.load import request, run_all
from harness.seed import seed_database
from harness.server import Gunicorn
from tests.conftest import BACKENDS

PASSWORD = "throttle test passphrase 9"
LIMITS = {  # config/settings.py THROTTLE
    "password": {"per_client": 20, "per_account_client": 5, "per_account": 10},
    "code-request": {"per_account_client": 5, "per_account": 10},
    "code": {"per_client": 30},
    "link": {"per_client": 30},
    "invite": {"per_client": 30},
    "setup": {"per_client": 30},
}
_addresses = (f"10.{i // 250}.{i % 250}.1" for i in itertools.count(1))


def test_limits_here_are_the_settings():
    from django.conf import settings

    for path, limits in LIMITS.items():
        assert {k: settings.THROTTLE[path][k] for k in limits} == limits


class Site:
    def __init__(self, url: str, mail_dir: Path, seeded: dict):
        self.url, self.mail_dir, self.seeded = url, mail_dir, seeded

    def post(self, path, form, *, address, cookies=None):
        csrf = secrets.token_hex(16)
        jar = {"csrftoken": csrf, **(cookies or {})}
        headers = {
            "X-Forwarded-For": address,
            "X-CSRFToken": csrf,
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
        }
        return request(self.url, "POST", path, headers=headers, form=form)

    def get(self, path, *, address):
        return request(self.url, "GET", path, headers={"X-Forwarded-For": address})

    def burst(self, calls) -> Counter:
        return Counter(r.status for r in run_all(calls, concurrency=len(calls)))

    def code_for(self, email: str) -> str:
        for message in sorted(self.mail_dir.iterdir(), key=lambda p: p.stat().st_mtime_ns)[::-1]:
            text = message.read_text()
            if f"To: {email}" in text:
                return re.search(r"code for the exam slot booking is (\d{6})", text).group(1)
        raise AssertionError(f"no email to {email}")


@pytest.fixture(scope="module", params=BACKENDS)
def site(request, static_root, tmp_path_factory):
    url = request.getfixturevalue(f"{request.param}_databases").fresh()
    seeded = seed_database(
        url,
        {
            "students": 4,
            "instructor_password": PASSWORD,
            "instructors": ["prof1@example.org", "prof2@example.org", "prof3@example.org"],
            "superuser": True,
        },
        settings="tests.settings_throttle",  # its cheap password hasher
    )
    mail_dir = tmp_path_factory.mktemp("mail")
    with Gunicorn(
        url,
        static_root=static_root,
        workers=4,
        DJANGO_SETTINGS_MODULE="tests.settings_throttle",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
    ) as server:
        yield Site(server.url, mail_dir, seeded)


def wrong_passwords(site, path, email, addresses):
    field = "username" if path.startswith("/admin/") else "email"
    return [
        partial(site.post, path, {field: email, "password": "wrong guess"}, address=a)
        for a in addresses
    ]


def test_passwords_from_one_address(site):
    attacker = next(_addresses)
    burst = site.burst(wrong_passwords(site, "/staff/login/", "prof1@example.org", [attacker] * 30))
    assert burst == {400: 5, 429: 25}
    right = {"email": "prof1@example.org", "password": PASSWORD}
    assert site.post("/staff/login/", right, address=attacker).status == 429
    # The stranger locked out only their own address.
    assert site.post("/staff/login/", right, address=next(_addresses)).status == 302


def test_passwords_from_many_addresses_spare_a_known_browser(site):
    right = {"email": "prof2@example.org", "password": PASSWORD}
    earlier = site.post("/staff/login/", right, address=next(_addresses))
    assert earlier.status == 302 and "device" in earlier.cookies  # this browser is now known
    addresses = [next(_addresses) for _ in range(25)]
    burst = site.burst(wrong_passwords(site, "/staff/login/", "prof2@example.org", addresses))
    assert burst == {400: 10, 429: 15}  # the account's limit for all unknown browsers
    assert site.post("/staff/login/", right, address=next(_addresses)).status == 429
    device = {"device": earlier.cookies["device"]}
    assert site.post("/staff/login/", right, address=next(_addresses), cookies=device).status == 302


def test_admin_sign_in_shares_the_throttle(site):
    attacker = next(_addresses)
    burst = site.burst(wrong_passwords(site, "/admin/login/", "prof3@example.org", [attacker] * 30))
    assert burst == {400: 5, 429: 25}
    admin = {"username": "prof3@example.org", "password": PASSWORD}
    assert site.post("/admin/login/", admin, address=attacker).status == 429
    staff = {"email": "prof3@example.org", "password": PASSWORD}
    assert site.post("/staff/login/", staff, address=attacker).status == 429  # one throttle
    assert site.post("/admin/login/", admin, address=next(_addresses)).status == 302


def test_code_requests(site):
    email = site.seeded["students"][0]["email"]
    one = next(_addresses)
    calls = [partial(site.post, "/login/", {"email": email}, address=one) for _ in range(20)]
    assert site.burst(calls) == {302: 5, 429: 15}
    email = site.seeded["students"][1]["email"]
    calls = [
        partial(site.post, "/login/", {"email": email}, address=next(_addresses)) for _ in range(20)
    ]
    assert site.burst(calls) == {302: 10, 429: 10}


def test_wrong_codes_in_parallel(site):
    email = site.seeded["students"][2]["email"]
    attacker = next(_addresses)
    asked = site.post("/login/", {"email": email}, address=attacker)
    assert asked.status == 302
    session = {"sessionid": asked.cookies["sessionid"]}
    code = site.code_for(email)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    calls = [
        partial(site.post, "/login/code/", {"code": wrong}, address=attacker, cookies=session)
        for _ in range(20)
    ]
    burst = site.burst(calls)
    assert burst[400] == 5 and burst[410] + burst[429] == 15  # 5 tries, then the code is dead
    late = site.post("/login/code/", {"code": code}, address=attacker, cookies=session)
    assert late.status == 410
    # The student's own code, asked for in their own browser, is untouched.
    student = next(_addresses)
    own = site.post("/login/", {"email": email}, address=student)
    own_session = {"sessionid": own.cookies["sessionid"]}
    signed_in = site.post(
        "/login/code/", {"code": site.code_for(email)}, address=student, cookies=own_session
    )
    assert signed_in.status == 302


@pytest.mark.parametrize(
    ("path", "method", "checked"),
    [
        ("/login/link/{}/", "post", 410),
        ("/login/invite/", "invite", 400),
        ("/staff/setup/MQ/{}/", "get", 200),
    ],
    ids=["link", "invite", "setup link"],
)
def test_secrets_in_links_and_codes(site, path, method, checked):
    address = next(_addresses)

    def attempt():
        guess = secrets.token_urlsafe(24)
        if method == "invite":
            return site.post(path, {"code": guess[:19]}, address=address)
        if method == "post":
            return site.post(path.format(guess), {}, address=address)
        return site.get(path.format(f"abc-{guess[:20]}"), address=address)

    calls = [attempt for _ in range(45)]
    assert site.burst(calls) == {checked: 30, 429: 15}
