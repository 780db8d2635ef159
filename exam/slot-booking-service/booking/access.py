"""Who may see and change what. Every lookup is scoped by the signed-in user, so an object of
another exam is simply not found (404) instead of being found and then checked.

Students: a sign-in by emailed code or link proves the mailbox, so it reaches every exam whose
roster lists the address. A sign-in by a printed invite code proves only that the bearer got the
code from an instructor of one exam, so that session reaches that exam only (``exam_scope`` in
the session; None means every exam of the account).
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Enrollment, Exam, Slot

SCOPE = "exam_scope"


def exam_scope(request) -> list[int] | None:
    """Exams this sign-in may reach as a student: None for all of the account's exams."""
    if getattr(request, "auth_by_token", False):  # API tokens are made by full sign-ins only
        return None
    return request.session.get(SCOPE)


def _caller(request):
    return request.auth if hasattr(request, "auth") else request.user  # JSON API / pages


def student_enrollments(request):
    enrollments = Enrollment.objects.filter(student=_caller(request))
    scope = exam_scope(request)
    return enrollments if scope is None else enrollments.filter(exam_id__in=scope)


def enrollment_for(request, exam_id: int) -> Enrollment:
    return get_object_or_404(
        student_enrollments(request).select_related("exam", "student"), exam_id=exam_id
    )


def taught_exams(user):
    if not user.is_staff:
        return Exam.objects.none()
    return Exam.objects.all() if user.is_superuser else user.taught_exams.all()


def taught_exam(user, exam_id: int) -> Exam:
    return get_object_or_404(taught_exams(user), pk=exam_id)


def taught_slot(user, slot_id: int) -> Slot:
    return get_object_or_404(
        Slot.objects.select_related("exam", "examiner").filter(exam__in=taught_exams(user)),
        pk=slot_id,
    )


def taught_enrollment(user, exam_id: int, enrollment_id: int) -> Enrollment:
    return get_object_or_404(
        Enrollment.objects.select_related("exam", "student"),
        pk=enrollment_id,
        exam=taught_exam(user, exam_id),
    )


def instructor_required(view):
    """Signed-in staff only (403 for students); the exam scoping happens in the lookups."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only instructors can open this page.")
        return view(request, *args, **kwargs)

    return wrapper
