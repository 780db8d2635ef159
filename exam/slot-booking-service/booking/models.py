"""Data model. The invariants that protect seats are database constraints, not Python checks:

* ``slot_not_overbooked``: CHECK (0 <= booked <= capacity) on every slot;
* ``one_active_booking_per_student_per_exam``: partial UNIQUE index on booking(enrollment)
  WHERE status = 'active' (an enrollment is one student on one exam's roster);
* ``booked`` is a counter of active bookings, changed only by conditional UPDATEs in
  ``booking.services``; ``manage.py check_integrity`` verifies counter == bookings.

Tenancy: a student's account (``User``) is shared by every exam whose roster lists the address,
so everything an instructor controls hangs off the exam instead: the name and group on the
roster (``Enrollment``), invite codes (per enrollment), examiners and their calendar feeds (per
exam). An instructor of one exam therefore cannot rename, sign in as, or read the calendar of a
student or examiner of another exam.
"""

import secrets
import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .validation import one_line


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name such as Europe/Berlin.")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **fields):
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)  # None gives an unusable password (students)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: an instructor (is_staff, password) or a student (roster row, login by code)."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True, validators=[one_line])
    is_staff = models.BooleanField(
        default=False, help_text="Instructors are staff: they sign in with a password."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    def __str__(self):
        return f"{self.name} <{self.email}>" if self.name else self.email


def new_feed_token() -> str:
    return secrets.token_urlsafe(24)


class Exam(models.Model):
    title = models.CharField(max_length=200, validators=[one_line])
    time_zone = models.CharField(
        max_length=64,
        validators=[validate_time_zone],
        help_text="Slots are entered and shown in this IANA time zone; stored in UTC.",
    )
    instructors = models.ManyToManyField(User, related_name="taught_exams")
    booking_opens_at = models.DateTimeField()
    booking_closes_at = models.DateTimeField(help_text="Last moment to book or move.")
    cancellation_deadline = models.DateTimeField(help_text="Last moment to cancel or move.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-booking_opens_at", "title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(booking_closes_at__gt=F("booking_opens_at")),
                name="exam_window_order",
            )
        ]

    def __str__(self):
        return self.title

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Enrollment(models.Model):
    """One student on one exam's roster, with the name and group this exam's roster gives."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="enrollments")
    student = models.ForeignKey(User, on_delete=models.CASCADE, related_name="enrollments")
    name = models.CharField(max_length=200, blank=True, validators=[one_line])
    group = models.CharField(max_length=100, blank=True, validators=[one_line])

    class Meta:
        ordering = ["name", "student__email"]
        constraints = [
            models.UniqueConstraint(fields=["exam", "student"], name="one_roster_row_per_student")
        ]

    def __str__(self):
        return f"{self.display_name} in {self.exam}"

    @property
    def display_name(self) -> str:
        """'Name <email>' as this exam's roster has it."""
        email = self.student.email
        return f"{self.name} <{email}>" if self.name else email


class Examiner(models.Model):
    """Who examines in an exam's slots; has a private iCal feed URL (calendar apps cannot sign
    in). Examiners belong to one exam: the same name typed in two exams gives two examiners,
    each with a feed of their own exam's slots only."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="examiners")
    name = models.CharField(max_length=200, validators=[one_line])
    feed_token = models.CharField(max_length=64, unique=True, default=new_feed_token)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["exam", "name"], name="one_examiner_name_per_exam")
        ]

    def __str__(self):
        return self.name


class Slot(models.Model):
    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="slots")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    room = models.CharField(max_length=200, blank=True, validators=[one_line])
    online_url = models.URLField(blank=True)
    examiner = models.ForeignKey(
        Examiner, on_delete=models.SET_NULL, null=True, blank=True, related_name="slots"
    )
    capacity = models.IntegerField()
    booked = models.IntegerField(default=0, editable=False)
    is_published = models.BooleanField(default=False)

    class Meta:
        ordering = ["starts_at", "pk"]
        indexes = [models.Index(fields=["exam", "starts_at"], name="slot_exam_start")]
        constraints = [
            models.CheckConstraint(condition=Q(capacity__gte=0), name="slot_capacity_not_negative"),
            models.CheckConstraint(
                condition=Q(booked__gte=0) & Q(booked__lte=F("capacity")),
                name="slot_not_overbooked",
            ),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="slot_time_order"),
            models.CheckConstraint(
                condition=~Q(room="") | ~Q(online_url=""), name="slot_has_place"
            ),
        ]

    def __str__(self):
        return f"{self.exam} at {self.starts_at:%Y-%m-%d %H:%M} UTC"

    @property
    def free(self) -> int:
        return self.capacity - self.booked


class Booking(models.Model):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    STATUS_CHOICES = [(ACTIVE, "active"), (CANCELLED, "cancelled")]

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="bookings")
    slot = models.ForeignKey(Slot, on_delete=models.RESTRICT, related_name="bookings")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=ACTIVE)
    sequence = models.PositiveIntegerField(
        default=0, help_text="iCalendar SEQUENCE: incremented on every move or cancellation."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slot__starts_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment"],
                condition=Q(status="active"),
                name="one_active_booking_per_student_per_exam",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "cancelled"]), name="booking_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.enrollment.display_name} -> slot {self.slot_id} ({self.status})"


class AuditEvent(models.Model):
    """Append-only log of every change (database triggers refuse UPDATE and DELETE).

    Ids are plain integers, not foreign keys, so the log outlives what it describes.
    """

    at = models.DateTimeField(default=timezone.now)
    actor_id = models.BigIntegerField(null=True)
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=40)
    exam_id = models.BigIntegerField(null=True)
    slot_id = models.BigIntegerField(null=True)
    booking_id = models.BigIntegerField(null=True)
    student_email = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["exam_id", "at"], name="audit_exam_time")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_email or 'system'}"


class OutboxEmail(models.Model):
    """Email written in the same transaction as the change it reports, sent after commit."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    STATUS_CHOICES = [(s, s) for s in (PENDING, SENDING, SENT, FAILED)]
    MAX_ATTEMPTS = 5

    exam_id = models.BigIntegerField(null=True, help_text="The exam the email is about, if any.")
    dedupe_key = models.CharField(max_length=200, unique=True)
    to_email = models.EmailField()
    subject = models.CharField(max_length=300)
    body = models.TextField()
    ics = models.TextField(blank=True, help_text="iCalendar attachment, if any.")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"], name="outbox_status")]

    def __str__(self):
        return f"{self.subject} -> {self.to_email} ({self.status})"


class LoginToken(models.Model):
    """An emailed one-time sign-in: a short code to type and a link; only hashes are stored.

    The code works only in the browser session that asked for it (``binding`` is the keyed
    hash of a random value kept in that session), so a stranger who asks for codes for someone
    else's address can neither guess that person's code nor invalidate it. The link works in
    any browser: opening it proves access to the mailbox.
    """

    MAX_ATTEMPTS = 5

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="login_tokens")
    binding = models.CharField(max_length=64, db_index=True)
    code_hash = models.CharField(max_length=64)
    link_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"sign-in for {self.user} until {self.expires_at:%Y-%m-%d %H:%M} UTC"


class InviteCode(models.Model):
    """A printed one-time code, the fallback when email does not arrive. It belongs to one
    roster row: it signs the student in for that exam only."""

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="invite_codes"
    )
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"invite code for {self.enrollment}"


class ApiToken(models.Model):
    """Bearer token for the JSON API (shown once; only its keyed hash is stored)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="api_token")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"API token of {self.user}"


class ThrottleWindow(models.Model):
    """Fixed-window counters shared by all workers (see booking.throttle)."""

    name = models.CharField(max_length=300)
    bucket = models.BigIntegerField(help_text="Unix time // window length.")
    hits = models.PositiveIntegerField(default=0)
    expires = models.BigIntegerField(help_text="Unix time at which the window ends.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "bucket"], name="one_counter_per_window")
        ]
        indexes = [models.Index(fields=["expires"], name="throttle_expires")]

    def __str__(self):
        return f"{self.name}: {self.hits} in window {self.bucket}"
