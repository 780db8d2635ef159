"""Who may see and change what. Every lookup is scoped by the signed-in user, so an object of
another exam is simply not found (404) instead of being found and then checked."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Enrollment, Exam, Slot


def enrollment_for(user, exam_id: int) -> Enrollment:
    return get_object_or_404(
        Enrollment.objects.select_related("exam", "student"), exam_id=exam_id, student=user
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
