"""Browser test: Playwright drives Debian's chromium (never a downloaded browser) against
gunicorn on a SQLite file. A student signs in with the emailed code, books, moves, cancels, and
meets the cancellation deadline the instructor sets; the instructor exports the CSV; two
students in two browsers race for the last seat and exactly one gets it. On a phone (390 px
wide) no student or instructor page scrolls sideways, a full slot's Book button is disabled
(also when the slot fills while the page is open), buttons name their slot to screen readers,
and the slot form previews its series."""

import csv
import datetime as dt
import io
import re
import secrets
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect, sync_playwright

from harness.load import request
from harness.seed import seed_database
from harness.server import Gunicorn

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser test passphrase 7"


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed: apt-get install -y chromium chromium-driver "
            "(.ci/run does this). Playwright never downloads its own browser here.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def site_database(sqlite_databases):
    return sqlite_databases.fresh()


@pytest.fixture(scope="module")
def site(site_database, static_root, tmp_path_factory):
    mail_dir = tmp_path_factory.mktemp("mail")
    url = site_database
    seeded = seed_database(
        url, {"slots": 3, "capacity": 1, "students": 3, "instructor_password": PASSWORD}
    )
    with Gunicorn(
        url,
        static_root=static_root,
        workers=2,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
    ) as server:
        yield server.url, mail_dir, seeded


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def emailed_code(mail_dir: Path, email: str) -> str:
    messages = sorted(mail_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    for message in reversed(messages):
        text = message.read_text()
        if f"To: {email}" in text:
            return re.search(r"code for the exam slot booking is (\d{6})", text).group(1)
    raise AssertionError(f"no email to {email}")


OUTSIDE: list[str] = []  # requests that left the site (a CDN, say); must stay empty


def new_page(browser, base: str, **options):
    page = browser.new_context(**options).new_page()
    page.on(
        "request",
        lambda r: None if r.url.startswith((base, "data:")) else OUTSIDE.append(r.url),
    )
    return page


def sign_in(browser, base: str, mail_dir: Path, email: str):
    page = new_page(browser, base)
    page.goto(base + "/login/")
    page.get_by_label("Your university email address").fill(email)
    page.get_by_role("button", name="Email me a code").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.get_by_label("Code from the email").fill(emailed_code(mail_dir, email))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Oral exam")).to_be_visible()
    return page


def slot_button(page, slot_id: int):
    return page.locator(f"form:has(input[name=slot][value='{slot_id}']) button")


def message(page):
    return page.locator(".messages li").first


def test_student_and_instructor_flows(browser, site):
    base, mail_dir, seeded = site
    first, second, _ = seeded["slots"]
    page = sign_in(browser, base, mail_dir, seeded["students"][0]["email"])

    slot_button(page, first).click()
    expect(message(page)).to_contain_text("You are booked for")
    expect(page.locator("#my-booking")).to_contain_text("Room 1.01")

    slot_button(page, second).click()
    expect(message(page)).to_contain_text("Your slot is now")
    expect(page.locator("tr.mine")).to_contain_text("Your slot")

    page.get_by_role("link", name="Cancel booking…").click()
    page.get_by_role("button", name="Yes, cancel my booking").click()
    expect(message(page)).to_have_text("Your booking is cancelled.")
    expect(page.locator("#my-booking")).to_contain_text("not booked")

    slot_button(page, first).click()
    expect(message(page)).to_contain_text("You are booked for")

    # The instructor moves the cancellation deadline into the past ...
    staff = new_page(browser, base, accept_downloads=True)
    staff.goto(base + "/staff/login/")
    staff.get_by_label("Email").fill("teacher@example.org")
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_role("button", name="Sign in").click()
    staff.get_by_role("link", name="Oral exam").click()
    staff.get_by_role("link", name="Change").click()
    past = dt.datetime.now(ZoneInfo("Europe/Berlin")) - dt.timedelta(hours=1)
    staff.get_by_label("Cancellation deadline").fill(f"{past:%Y-%m-%dT%H:%M}")
    staff.get_by_role("button", name="Save").click()
    expect(message(staff)).to_have_text("Exam settings saved.")

    # ... and the student can no longer cancel or move.
    page.reload()
    expect(page.get_by_text("Cancelling is no longer possible")).to_be_visible()
    expect(page.get_by_role("link", name="Cancel booking…")).to_have_count(0)
    expect(page.get_by_role("button", name="Move here")).to_have_count(0)

    with staff.expect_download() as download:
        staff.get_by_role("link", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    booked = [r for r in rows if r["status"] == "booked"]
    assert [r["student_email"] for r in booked] == [seeded["students"][0]["email"]]
    assert sum(r["status"] == "not booked" for r in rows) == 2
    assert OUTSIDE == []


def test_two_browsers_race_for_the_last_seat(browser, site):
    base, mail_dir, seeded = site
    last_seat = seeded["slots"][2]
    pages = [sign_in(browser, base, mail_dir, s["email"]) for s in seeded["students"][1:]]
    observer = sign_in(browser, base, mail_dir, seeded["students"][0]["email"])
    for page in [*pages, observer]:
        expect(page.locator(f"#seats-{last_seat}")).to_have_text("1 of 1 free")
    for page in pages:  # both clicks are dispatched before either answer arrives
        slot_button(page, last_seat).click(no_wait_after=True)
    outcomes = []
    for page in pages:
        expect(message(page)).to_be_visible()
        outcomes.append(message(page).inner_text())
    winners = [o for o in outcomes if o.startswith("You are booked for")]
    losers = [o for o in outcomes if o == "This slot is full. Pick another one."]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    # A third student who just watches the page sees the seat go, without reloading (htmx
    # polls the seat counts every 5 s with the htmx copy vendored by django-htmx, no CDN).
    expect(observer.locator(f"#seats-{last_seat}")).to_have_text("Full", timeout=12_000)
    assert OUTSIDE == []


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}
LONG = {
    "exam": {"title": "Generative models for images, video and 3D: oral examination"},
    "room": "Seminar room 3.14, Building for Mathematics and Computer Science",
    "online_url": "https://meet.example.org/generative-models-oral-examination-with-a-long-name",
    "examiner": "Prof. Dr. Maximiliane Mustermann-Schmidt",
    "student_prefix": "a.student.with.a.rather.long.university.address",
}


def sideways_scroll(page) -> int:
    """How many CSS pixels the page is wider than the phone's 390 px screen (0: it does not
    scroll sideways). Measured against the fixed width, not window.innerWidth, which a mobile
    browser widens when it zooms out to fit a page that is too wide."""
    return (
        page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
        - PHONE["viewport"]["width"]
    )


def phone_page(browser, base: str, session: str):
    page = new_page(browser, base, **PHONE)
    page.context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
    return page


def test_phone_width(browser, site, site_database):
    base = site[0]
    seeded = seed_database(
        site_database,
        {
            **LONG,
            "slots": 4,
            "capacity": 1,
            "students": 3,
            "auth": "session",
            "instructor_email": "phone.teacher@example.org",
            "instructor_session": True,
            "bookings": [[1, 0]],
        },
    )
    exam, slots = seeded["exam"], seeded["slots"]
    unbooked, booked, other = (s["credential"] for s in seeded["students"])
    too_wide = {}

    student = phone_page(browser, base, unbooked)
    student.goto(f"{base}/exams/{exam}/")
    too_wide["student exam page"] = sideways_scroll(student)
    # The full slot's button is disabled; every button names its slot.
    expect(student.locator(f"button[data-seats=seats-{slots[0]}]")).to_be_disabled()
    named = student.get_by_role("button", name=re.compile(r"^Book \w+day \d+ \w+ \d{4}, "))
    expect(named).to_have_count(4)
    expect(named.nth(0)).to_have_accessible_name(re.compile(r"\d\d:\d\d.\d\d:\d\d, Seminar"))
    # A slot that fills while the page is open: its button is disabled by the live refresh.
    csrf = secrets.token_hex(16)
    taken = request(
        base,
        "POST",
        f"/api/exams/{exam}/booking",
        headers={"Cookie": f"sessionid={other}; csrftoken={csrf}", "X-CSRFToken": csrf},
        body={"slot_id": slots[3]},
    )
    assert taken.status == 201
    expect(student.locator(f"button[data-seats=seats-{slots[3]}]")).to_be_disabled(timeout=12_000)

    mine = phone_page(browser, base, booked)
    mine.goto(f"{base}/exams/{exam}/")
    moves = mine.get_by_role("button", name=re.compile(r"^Move here: \w+day \d+ \w+ \d{4}, "))
    expect(moves).to_have_count(3)
    expect(moves.nth(2)).to_be_disabled()  # the slot that filled up
    too_wide["student exam page, booked"] = sideways_scroll(mine)
    mine.goto(f"{base}/exams/{exam}/cancel/")
    too_wide["student cancel page"] = sideways_scroll(mine)

    staff = phone_page(browser, base, seeded["instructor_session"])
    enrollment = seeded["students"][1]["enrollment"]
    for name, path in [
        ("instructor dashboard", "/manage/"),
        ("instructor exam page", f"/manage/exams/{exam}/"),
        ("exam settings", f"/manage/exams/{exam}/edit/"),
        ("roster", f"/manage/exams/{exam}/roster/"),
        ("not booked", f"/manage/exams/{exam}/unbooked/"),
        ("audit log", f"/manage/exams/{exam}/audit/"),
        ("slot page", f"/manage/slots/{slots[0]}/"),
        ("new invite codes", f"/manage/exams/{exam}/invites/"),
        ("remove a student", f"/manage/exams/{exam}/students/{enrollment}/remove/"),
        ("add slots", f"/manage/exams/{exam}/slots/new/"),
    ]:
        staff.goto(base + path)
        too_wide[name] = sideways_scroll(staff)
    assert too_wide == dict.fromkeys(too_wide, 0)
    checkbox = staff.get_by_role("checkbox", name=re.compile("^Select the slot of "))

    # The series form previews what it would create, as it is filled in.
    staff.get_by_label("First day").fill(f"{dt.date.today() + dt.timedelta(days=30):%Y-%m-%d}")
    staff.get_by_label("First slot starts at").fill("09:00")
    staff.get_by_label("Slots per day").fill("3")
    staff.get_by_label("Room").fill("HS 1")
    staff.get_by_label("Room").blur()
    expect(staff.get_by_role("heading", name="Preview: 3 slots")).to_be_visible()
    expect(staff.locator("ol.preview li")).to_have_count(3)
    assert sideways_scroll(staff) == 0
    staff.goto(f"{base}/manage/exams/{exam}/")
    expect(checkbox).to_have_count(4)
    assert OUTSIDE == []
