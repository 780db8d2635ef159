"""A corpus of malformed requests, on SQLite and PostgreSQL: ids no database can hold (in page
URLs, API paths and bodies, admin URLs and form fields), NUL bytes and control characters,
booleans and floats for ids, multipart and other non-JSON bodies to the JSON API, years 9999 and
0001, line breaks in titles and names, overlong values. Each answer is a clear 4xx, never a 5xx,
and never an accepted booking."""

from collections import Counter

from tests import scenarios


def test_bad_input_gets_a_4xx_never_a_5xx(on_db):
    results = on_db(scenarios.bad_input_corpus)
    assert len(results) > 250
    wrong = [
        (case, status)
        for case, status, allowed in results
        if status not in (allowed or range(400, 500))
    ]
    assert wrong == [], wrong
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 302, 400, 403, 404, 405, 409, 410, 415, 422, 429}, statuses
    assert all(status < 500 for status in statuses)


def test_a_title_with_a_line_break_does_not_stop_emails(on_db):
    seen = on_db(scenarios.title_with_a_line_break_does_not_stop_emails)
    assert seen["status"] == "sent" and seen["error"] == ""
    assert seen["subject"] == "Exam slot changed: Oral exam Bcc: everyone@example.org"
    assert seen["sent subject"] == seen["subject"]
