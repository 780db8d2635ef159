"""The JSON API: the same actions as the pages, with status codes and an OpenAPI schema."""

import pytest
from django.test import Client
from django.urls import reverse

from booking import signin
from booking.models import Booking


@pytest.fixture
def api(enrollment):
    token = signin.issue_api_token(enrollment.student)
    return Client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def staff_api(instructor):
    return Client(headers={"Authorization": f"Bearer {signin.issue_api_token(instructor)}"})


def test_openapi_schema_lists_every_action(client, db):
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/exams/{exam_id}/booking"]) == {"get", "post", "put", "delete"}
    assert set(paths["/api/exams/{exam_id}/students/{enrollment_id}/booking"]) == {"put", "delete"}
    assert "409" in paths["/api/exams/{exam_id}/booking"]["post"]["responses"]
    assert client.get("/api/docs").status_code == 200


def test_student_flow(api, enrollment, slots):
    exam = enrollment.exam_id
    assert api.get("/api/exams").json()[0] | {"role": "student"} == api.get("/api/exams").json()[0]
    listed = api.get(f"/api/exams/{exam}/slots").json()
    assert [s["free"] for s in listed] == [2, 2, 2]
    assert api.get(f"/api/exams/{exam}/booking").status_code == 404

    created = api.post(
        f"/api/exams/{exam}/booking", {"slot_id": slots[0].pk}, content_type="application/json"
    )
    assert created.status_code == 201 and created.json()["slot_id"] == slots[0].pk
    repeat = api.post(
        f"/api/exams/{exam}/booking", {"slot_id": slots[0].pk}, content_type="application/json"
    )
    assert repeat.status_code == 200 and repeat.json()["id"] == created.json()["id"]
    other = api.post(
        f"/api/exams/{exam}/booking", {"slot_id": slots[1].pk}, content_type="application/json"
    )
    assert other.status_code == 409 and "Move here" in other.json()["detail"]

    moved = api.put(
        f"/api/exams/{exam}/booking", {"slot_id": slots[1].pk}, content_type="application/json"
    )
    assert moved.status_code == 200 and moved.json()["sequence"] == 1
    assert api.delete(f"/api/exams/{exam}/booking").status_code == 204
    assert api.delete(f"/api/exams/{exam}/booking").status_code == 204
    assert not Booking.objects.filter(status=Booking.ACTIVE).exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [({"slot_id": -3}, 422), ({"slot_id": "x"}, 422), ({}, 422), ({"slot_id": 999999}, 404)],
)
def test_bad_api_input(api, enrollment, body, status):
    response = api.post(
        f"/api/exams/{enrollment.exam_id}/booking", body, content_type="application/json"
    )
    assert response.status_code == status and "detail" in response.json()
    assert not Booking.objects.exists()


def test_malformed_json_is_400(api, enrollment):
    response = api.post(
        f"/api/exams/{enrollment.exam_id}/booking", "{not json", content_type="application/json"
    )
    assert response.status_code == 400, response.content


def test_instructor_flow(staff_api, exam, students, slots):
    url = f"/api/exams/{exam.pk}/students/{students[0].pk}/booking"
    assert (
        staff_api.put(url, {"slot_id": slots[0].pk}, content_type="application/json").status_code
        == 201
    )
    assert (
        staff_api.put(url, {"slot_id": slots[1].pk}, content_type="application/json").status_code
        == 200
    )
    listed = staff_api.get(f"/api/exams/{exam.pk}/bookings").json()
    assert [(b["student_email"], b["slot_id"]) for b in listed] == [
        (students[0].student.email, slots[1].pk)
    ]
    assert staff_api.delete(url).status_code == 204
    hidden = staff_api.get(f"/api/exams/{exam.pk}/slots").json()
    assert len(hidden) == 3


def test_wrong_token_is_401(client, db):
    response = client.get("/api/exams", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_session_auth_works_from_the_browser(student_client, enrollment, slots):
    response = student_client.get(reverse("api:slots", args=[enrollment.exam_id]))
    assert response.status_code == 200 and len(response.json()) == 3


def test_oversized_request_bodies_are_refused(api, student_client, enrollment, slots):
    huge = "x" * (3 * 1024 * 1024)
    response = api.post(
        f"/api/exams/{enrollment.exam_id}/booking",
        f'{{"slot_id": {slots[0].pk}, "pad": "{huge}"}}',
        content_type="application/json",
    )
    assert response.status_code == 400
    response = student_client.post(
        reverse("student-book", args=[enrollment.exam_id]), {"slot": slots[0].pk, "pad": huge}
    )
    assert response.status_code == 400
    assert not Booking.objects.exists()
