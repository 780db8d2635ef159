from django.urls import path, register_converter

from .validation import IdConverter, TokenConverter
from .views import auth, staff, student

# <id:...> matches only ids a database can hold (1 .. 2**63-1); <token:...> only URL-safe
# secrets. Anything else is a 404 before a view or a query runs.
register_converter(IdConverter, "id")
register_converter(TokenConverter, "token")

urlpatterns = [
    path("", auth.home, name="home"),
    # signing in
    path("login/", auth.request_code, name="login"),
    path("login/code/", auth.enter_code, name="login-code"),
    path("login/link/<token:token>/", auth.follow_link, name="login-link"),
    path("login/invite/", auth.redeem_invite, name="login-invite"),
    path("staff/login/", auth.staff_login, name="staff-login"),
    path("staff/setup/<uidb64>/<token>/", auth.StaffSetupView.as_view(), name="staff-setup"),
    path("logout/", auth.sign_out, name="logout"),
    path("account/", auth.account, name="account"),
    # students
    path("exams/", student.exams, name="student-exams"),
    path("exams/<id:exam_id>/", student.exam, name="student-exam"),
    path("exams/<id:exam_id>/seats/", student.seats, name="student-seats"),
    path("exams/<id:exam_id>/book/", student.book, name="student-book"),
    path("exams/<id:exam_id>/move/", student.move, name="student-move"),
    path("exams/<id:exam_id>/cancel/", student.cancel, name="student-cancel"),
    path("exams/<id:exam_id>/booking.ics", student.booking_calendar, name="student-ics"),
    # instructors
    path("manage/", staff.dashboard, name="staff-dashboard"),
    path("manage/exams/new/", staff.exam_new, name="staff-exam-new"),
    path("manage/exams/<id:exam_id>/", staff.exam_detail, name="staff-exam"),
    path("manage/exams/<id:exam_id>/edit/", staff.exam_edit, name="staff-exam-edit"),
    path("manage/exams/<id:exam_id>/seats/", staff.seats, name="staff-seats"),
    path("manage/exams/<id:exam_id>/slots/new/", staff.slots_new, name="staff-slots-new"),
    path(
        "manage/exams/<id:exam_id>/slots/publish/", staff.slots_publish, name="staff-slots-publish"
    ),
    path("manage/exams/<id:exam_id>/roster/", staff.roster_page, name="staff-roster"),
    path("manage/exams/<id:exam_id>/unbooked/", staff.unbooked, name="staff-unbooked"),
    path("manage/exams/<id:exam_id>/remind/", staff.remind, name="staff-remind"),
    path("manage/exams/<id:exam_id>/invites/", staff.invites, name="staff-invites"),
    path("manage/exams/<id:exam_id>/export.csv", staff.export_csv, name="staff-export"),
    path("manage/exams/<id:exam_id>/audit/", staff.audit, name="staff-audit"),
    path(
        "manage/exams/<id:exam_id>/students/<id:enrollment_id>/cancel/",
        staff.student_cancel,
        name="staff-student-cancel",
    ),
    path(
        "manage/exams/<id:exam_id>/students/<id:enrollment_id>/remove/",
        staff.student_remove,
        name="staff-student-remove",
    ),
    path("manage/slots/<id:slot_id>/", staff.slot_detail, name="staff-slot"),
    path("manage/slots/<id:slot_id>/place/", staff.slot_place, name="staff-slot-place"),
    path("manage/slots/<id:slot_id>/delete/", staff.slot_delete, name="staff-slot-delete"),
    path("feeds/examiner/<token:token>.ics", staff.examiner_calendar, name="examiner-feed"),
]
