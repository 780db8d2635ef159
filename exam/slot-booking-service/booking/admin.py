"""Django admin, for superusers only (the people who run the service). Instructors use the
instructor pages, which only reach their own exams; an instructor who is not a superuser is
refused here even with model permissions, so the admin cannot be a way around tenancy.

The site itself (``booking.adminsite``) admits superusers only, and its sign-in goes through the
same throttled backend as the staff page (``booking.backends``).
Seat counters, slots, bookings, the audit log and the outbox are read-only here: changing them
bypasses the booking rules. Removing a student (a roster row, or a student account) goes
through ``services.remove_student``, which cancels a booking properly first (seat, audit row,
cancellation email). An exam with active bookings cannot be deleted.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import transaction

from . import services
from .adminsite import ModelAdmin
from .models import AuditEvent, Booking, Enrollment, Exam, Examiner, OutboxEmail, Slot, User


def _remove(request, enrollments) -> None:
    removed = 0
    for enrollment in enrollments:
        try:
            services.remove_student(enrollment, actor=request.user)
        except services.BookingError as exc:
            messages.error(request, f"{enrollment}: {exc.message}")
        else:
            removed += 1
    if removed:
        messages.info(request, f"{removed} roster rows removed (bookings cancelled and emailed).")


class RemovesThroughTheService:
    """Deleting goes through ``services.remove_student``, which deletes the bookings and
    invite codes itself: they need no admin delete permission of their own."""

    def get_deleted_objects(self, objs, request):
        to_delete, model_count, _perms_needed, protected = super().get_deleted_objects(
            objs, request
        )
        return to_delete, model_count, set(), protected


@admin.register(User)
class UserAdmin(RemovesThroughTheService, BaseUserAdmin, ModelAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "name", "password"]}),
        ("Role", {"fields": ["is_active", "is_staff", "is_superuser", "groups"]}),
    ]
    add_fieldsets = [(None, {"fields": ["email", "name", "password1", "password2", "is_staff"]})]
    filter_horizontal = ["groups"]

    def delete_model(self, request, obj):
        self.delete_queryset(request, User.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        """A student account goes only after each of its roster rows went through the service;
        if one of them cannot (a booking changed meanwhile), the account stays."""
        for user in queryset:
            rows = Enrollment.objects.filter(student=user).select_related("exam", "student")
            _remove(request, rows)
            with transaction.atomic():
                if not Enrollment.objects.filter(student=user).exists():
                    User.objects.filter(pk=user.pk).delete()


class EnrollmentInline(admin.TabularInline):
    """This exam's roster, read here; students are added by roster import and removed with
    the Remove link (instructor pages) or the roster rows list below."""

    model = Enrollment
    extra = 0
    fields = ["student", "name", "group"]
    readonly_fields = ["student"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Exam)
class ExamAdmin(ModelAdmin):
    list_display = ["title", "time_zone", "booking_opens_at", "booking_closes_at"]
    filter_horizontal = ["instructors"]
    inlines = [EnrollmentInline]

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return not Booking.objects.filter(slot__exam=obj, status=Booking.ACTIVE).exists()


@admin.register(Enrollment)
class EnrollmentAdmin(RemovesThroughTheService, ModelAdmin):
    """Roster rows. Deleting one here is removing the student: through the service."""

    list_display = ["student", "name", "group", "exam"]
    list_filter = ["exam"]
    search_fields = ["student__email", "name"]
    fields = ["exam", "student", "name", "group"]
    readonly_fields = ["exam", "student"]

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        _remove(request, [obj])

    def delete_queryset(self, request, queryset):
        _remove(request, queryset.select_related("exam", "student"))


class ReadOnlyAdmin(ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Examiner)
class ExaminerAdmin(ReadOnlyAdmin):
    list_display = ["name", "exam"]
    list_filter = ["exam"]


@admin.register(Slot)
class SlotAdmin(ReadOnlyAdmin):
    list_display = ["exam", "starts_at", "room", "examiner", "booked", "capacity", "is_published"]
    list_filter = ["exam", "is_published"]


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = ["enrollment", "slot", "status", "sequence", "updated_at"]
    list_filter = ["status", "slot__exam"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "actor_email", "student_email", "exam_id", "slot_id"]
    list_filter = ["action"]
    search_fields = ["actor_email", "student_email"]


@admin.register(OutboxEmail)
class OutboxEmailAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "to_email", "subject", "status", "attempts", "last_error"]
    list_filter = ["status"]
