from django.urls import path

from .views import auth, staff, student

urlpatterns = [
    path("", auth.home, name="home"),
    # signing in
    path("login/", auth.request_code, name="login"),
    path("login/code/", auth.enter_code, name="login-code"),
    path("login/link/<str:token>/", auth.follow_link, name="login-link"),
    path("login/invite/", auth.redeem_invite, name="login-invite"),
    path("staff/login/", auth.staff_login, name="staff-login"),
    path("staff/setup/<uidb64>/<token>/", auth.StaffSetupView.as_view(), name="staff-setup"),
    path("logout/", auth.sign_out, name="logout"),
    path("account/", auth.account, name="account"),
    # students
    path("exams/", student.exams, name="student-exams"),
    path("exams/<int:exam_id>/", student.exam, name="student-exam"),
    path("exams/<int:exam_id>/seats/", student.seats, name="student-seats"),
    path("exams/<int:exam_id>/book/", student.book, name="student-book"),
    path("exams/<int:exam_id>/move/", student.move, name="student-move"),
    path("exams/<int:exam_id>/cancel/", student.cancel, name="student-cancel"),
    path("exams/<int:exam_id>/booking.ics", student.booking_calendar, name="student-ics"),
    # instructors
    path("manage/", staff.dashboard, name="staff-dashboard"),
    path("manage/exams/new/", staff.exam_new, name="staff-exam-new"),
    path("manage/exams/<int:exam_id>/", staff.exam_detail, name="staff-exam"),
    path("manage/exams/<int:exam_id>/edit/", staff.exam_edit, name="staff-exam-edit"),
    path("manage/exams/<int:exam_id>/seats/", staff.seats, name="staff-seats"),
    path("manage/exams/<int:exam_id>/slots/new/", staff.slots_new, name="staff-slots-new"),
    path(
        "manage/exams/<int:exam_id>/slots/publish/", staff.slots_publish, name="staff-slots-publish"
    ),
    path("manage/exams/<int:exam_id>/roster/", staff.roster_page, name="staff-roster"),
    path("manage/exams/<int:exam_id>/unbooked/", staff.unbooked, name="staff-unbooked"),
    path("manage/exams/<int:exam_id>/remind/", staff.remind, name="staff-remind"),
    path("manage/exams/<int:exam_id>/invites/", staff.invites, name="staff-invites"),
    path("manage/exams/<int:exam_id>/export.csv", staff.export_csv, name="staff-export"),
    path("manage/exams/<int:exam_id>/audit/", staff.audit, name="staff-audit"),
    path(
        "manage/exams/<int:exam_id>/students/<int:enrollment_id>/cancel/",
        staff.student_cancel,
        name="staff-student-cancel",
    ),
    path("manage/slots/<int:slot_id>/", staff.slot_detail, name="staff-slot"),
    path("manage/slots/<int:slot_id>/place/", staff.slot_place, name="staff-slot-place"),
    path("manage/slots/<int:slot_id>/delete/", staff.slot_delete, name="staff-slot-delete"),
    path("feeds/examiner/<str:token>.ics", staff.examiner_calendar, name="examiner-feed"),
]
