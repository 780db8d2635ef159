"""Django admin. Seat counters and bookings are read-only here: changing them bypasses the
booking rules, so that is done in the instructor pages (which go through services)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import AuditEvent, Booking, Enrollment, Exam, Examiner, OutboxEmail, Slot, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
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


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    extra = 0
    raw_id_fields = ["student"]


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    list_display = ["title", "time_zone", "booking_opens_at", "booking_closes_at"]
    filter_horizontal = ["instructors"]
    inlines = [EnrollmentInline]


@admin.register(Examiner)
class ExaminerAdmin(admin.ModelAdmin):
    list_display = ["name"]
    readonly_fields = ["feed_token"]


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ["exam", "starts_at", "room", "examiner", "booked", "capacity", "is_published"]
    list_filter = ["exam", "is_published"]
    readonly_fields = ["booked"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
