"""Tenancy, on SQLite and PostgreSQL: an instructor of exam X reaches nothing of exam Y through
any shared path: student accounts (roster import), invite codes, examiners and their calendar
feeds, and Django admin. (test_security.py covers the instructor pages and API by exam id.)"""

from tests import scenarios


def test_roster_import_and_invite_codes_stay_in_their_exam(on_db):
    seen = on_db(scenarios.roster_and_invites_across_exams)
    assert seen["imported"] == 302
    # re-issuing codes asks first ...
    assert seen["unconfirmed download"] == 200 and seen["unconfirmed is a question"]
    # ... the import renamed nobody outside X ...
    assert seen["Y roster name"] == seen["original name"] == seen["account name"]
    assert seen["X roster name"] == "Mallory's Puppet"
    # ... and X's invite code signs the student in for X only.
    assert seen["signed in"] == 302
    assert seen["reach"] == {
        "X page": 200,
        "Y page": 404,
        "Y seats": 404,
        "Y calendar": 404,
        "Y cancel": 404,
        "Y move": 404,
        "API Y booking": 404,
        "API Y cancel": 404,
        "API token": 403,
    }
    assert seen["listed"] == [seen["X title"]] and not seen["Y in my exams"]
    assert seen["Y booking"] == seen["Y slot"] and seen["Y cancellations"] == 0
    # Y's printed code still works after X's instructor made new codes for the same student.
    assert seen["Y code after X's download"] == 302 and seen["owner reaches Y"] == 200


def test_new_invite_codes_replace_only_their_exams_codes(on_db):
    assert on_db(scenarios.invite_reissue_is_per_exam) == {
        "old X code": 400,
        "new X code": 302,
        "Y code": 302,
    }


def test_examiners_and_their_feeds_belong_to_one_exam(on_db):
    seen = on_db(scenarios.examiners_and_feeds_across_exams)
    assert seen["saved"] == 302
    assert seen["examiners named so"] == 2  # the same name in X and Y: two examiners
    assert seen["X token on X's page"] and not seen["Y token on X's page"]
    assert seen["X feed shows X's exam"]
    assert not seen["X feed shows Y's exam"] and not seen["X feed names Y's student"]
    assert not seen["Y feed shows X's exam"] and seen["Y feed names Y's student"]


def test_admin_is_for_superusers_only(on_db):
    seen = on_db(scenarios.admin_is_for_superusers_only)
    assert set(seen["instructor"].values()) == {302}  # to the admin sign-in page
    assert seen["instructor delete"] == 302 and seen["still on roster"]
    assert set(seen["superuser"].values()) == {200}
