"""The sign-in throttle's rules, one at a time (test_throttle_parallel.py races them over HTTP):
counters, the order of counters that keeps one address from locking out anybody else, device
cookies, giving counts back on success, client addresses behind proxies, API tokens."""

import pytest
from django.core import signing
from django.test import Client, RequestFactory

from booking import signin, throttle
from booking.models import ThrottleWindow
from harness import factories

pytestmark = pytest.mark.django_db


def req(address="198.51.100.1", cookies=None, **meta):
    request = RequestFactory().post("/", REMOTE_ADDR=address, **meta)
    request.COOKIES.update(cookies or {})
    return request


def admitted(request, path="password", account="prof@example.org") -> bool:
    try:
        throttle.admit(request, path, account=account)
    except throttle.Refused:
        return False
    return True


def test_hit_counts_atomically_per_name_and_window():
    assert [throttle.hit("a", 60, now=1000.0) for _ in range(3)] == [1, 2, 3]
    assert throttle.hit("b", 60, now=1000.0) == 1
    assert throttle.hit("a", 60, now=1060.0) == 1  # the next window
    assert not ThrottleWindow.objects.filter(name="a", bucket=16).exists()  # expired, pruned


def test_one_address_cannot_lock_out_anybody_else():
    rules = throttle.policy("password")
    results = [admitted(req("203.0.113.5")) for _ in range(3 * rules.per_account)]
    assert results.count(True) == rules.per_account_client
    # the account's shared counter got only what passed this address's own counters
    assert (
        throttle.count(f"password:account:{throttle._short('prof@example.org')}", rules.seconds)
        == rules.per_account_client
    )
    assert admitted(req("198.51.100.77"))


def test_many_addresses_lock_unknown_browsers_out_but_not_a_known_one():
    rules = throttle.policy("password")
    admitted_count = sum(admitted(req(f"203.0.113.{i}")) for i in range(1, 3 * rules.per_account))
    assert admitted_count == rules.per_account
    assert not admitted(req("198.51.100.77"))
    cookie = signing.dumps(["prof@example.org", "dev1"], salt=throttle.DEVICE_SALT)
    assert admitted(req("198.51.100.77", cookies={throttle.DEVICE_COOKIE: cookie}))
    other = signing.dumps(["someone@example.org", "dev2"], salt=throttle.DEVICE_SALT)
    assert not admitted(req("198.51.100.77", cookies={throttle.DEVICE_COOKIE: other}))
    assert not admitted(req("198.51.100.77", cookies={throttle.DEVICE_COOKIE: cookie + "x"}))


def test_a_known_browser_has_its_own_limit():
    cookie = {throttle.DEVICE_COOKIE: signing.dumps(["p@x.org", "d"], salt=throttle.DEVICE_SALT)}
    limit = throttle.policy("password").per_device
    results = [admitted(req(cookies=cookie), account="p@x.org") for _ in range(limit + 2)]
    assert results == [True] * limit + [False, False]


def test_success_gives_counts_back_and_resets_its_own_counter():
    rules = throttle.policy("password")
    for _ in range(rules.per_account_client - 1):
        throttle.admit(req(), "password", account="prof@example.org")  # failures
    throttle.admit(req(), "password", account="prof@example.org").succeeded()
    assert throttle.count("password:client:198.51.100.1", rules.seconds) == (
        rules.per_account_client - 1
    )  # the success gave its own count back
    own = f"password:account-client:{throttle._short('prof@example.org')}:198.51.100.1"
    assert throttle.count(own, rules.seconds) == 0


@pytest.mark.parametrize(
    ("proxies", "meta", "client"),
    [
        (0, {"REMOTE_ADDR": "198.51.100.9"}, "198.51.100.9"),
        (0, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, "10.0.0.1"),
        (1, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, "1.2.3.4"),
        (1, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 1.2.3.4"}, "1.2.3.4"),
        (2, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 10.0.0.2"}, "1.2.3.4"),
        (1, {"REMOTE_ADDR": "10.0.0.1"}, "10.0.0.1"),
        (0, {"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"),
        (0, {"REMOTE_ADDR": "::ffff:192.0.2.1"}, "192.0.2.1"),
        (1, {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "not an address"}, "unknown"),
    ],
)
def test_client_address(settings, proxies, meta, client):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert throttle.client_address(RequestFactory().get("/", **meta)) == client


def test_wrong_api_tokens_block_the_client_not_the_token(enrollment):
    token = signin.issue_api_token(enrollment.student)
    limit = throttle.policy("api-token").per_client
    stranger = Client(REMOTE_ADDR="203.0.113.50")
    for _ in range(limit):
        assert (
            stranger.get("/api/exams", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
    right = {"Authorization": f"Bearer {token}"}
    assert stranger.get("/api/exams", headers=right).status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.3").get("/api/exams", headers=right).status_code == 200


def test_sign_ins_set_a_device_cookie(client, enrollment, django_capture_on_commit_callbacks):
    factories.make_instructor("prof@example.org", password="a long passphrase 42")
    response = client.post(
        "/staff/login/", {"email": "prof@example.org", "password": "a long passphrase 42"}
    )
    cookie = response.cookies[throttle.DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    request = req(cookies={throttle.DEVICE_COOKIE: cookie.value})
    assert throttle.trusted_device(request, "prof@example.org") is not None
    assert throttle.trusted_device(request, enrollment.student.email) is None
