"""Forms. Dates and times are typed as wall-clock times in the exam's time zone and converted
to UTC here (``timeutil.to_utc``), with a clear error for times a DST change skips or repeats.
Years outside 2000-2100, multi-line titles and names, and ids no database can hold are form
errors (``booking.validation``), never server errors."""

import datetime as dt
import zoneinfo

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import timeutil
from .models import Booking, Exam, Slot
from .validation import one_line, parse_id, year_in_range

MAX_SERIES = 500
TIME_ZONES = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


class WallClockField(forms.Field):
    """A naive date and time (``<input type=datetime-local>``), interpreted by the form."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, dt.datetime):
            return value
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise ValidationError("Enter a date and time like 2026-06-15 09:00.") from exc
        if parsed.tzinfo is not None:
            raise ValidationError("Enter the time without a UTC offset; the exam's zone applies.")
        year_in_range(parsed)
        return parsed


def one_line_field(**kwargs) -> forms.CharField:
    return forms.CharField(max_length=200, validators=[one_line], **kwargs)


class IdChoiceField(forms.ModelChoiceField):
    """A model choice by id; ids no database can hold are an invalid choice, not a crash."""

    def to_python(self, value):
        if value not in self.empty_values and parse_id(str(value)) is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


def local_initial(instant: dt.datetime | None, tz) -> dt.datetime | None:
    return timeutil.local(instant, tz).replace(tzinfo=None) if instant else None


def _convert(form: forms.Form, names: list[str], tz) -> None:
    """Replace naive wall-clock values in cleaned_data by UTC instants (errors per field)."""
    for name in names:
        wall = form.cleaned_data.get(name)
        if wall is None:
            continue
        try:
            form.cleaned_data[name] = timeutil.to_utc(wall, tz)
        except ValueError as exc:
            form.add_error(name, str(exc))


class EmailForm(forms.Form):
    email = forms.EmailField(
        label="Your university email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from the email",
        max_length=12,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}
        ),
    )


class InviteForm(forms.Form):
    code = forms.CharField(
        label="Invite code", max_length=40, widget=forms.TextInput(attrs={"autofocus": True})
    )


class StaffLoginForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class ExamForm(forms.Form):
    title = one_line_field()
    time_zone = forms.ChoiceField(
        choices=[(z, z) for z in TIME_ZONES],
        help_text="Times below, and all slot times, are in this zone.",
    )
    booking_opens_at = WallClockField(label="Booking opens")
    booking_closes_at = WallClockField(
        label="Booking closes", help_text="Last moment to book or move."
    )
    cancellation_deadline = WallClockField(
        label="Cancellation deadline", help_text="Last moment for students to cancel or move."
    )

    WHEN = ["booking_opens_at", "booking_closes_at", "cancellation_deadline"]

    @classmethod
    def for_exam(cls, exam: Exam | None, default_zone: str, data=None):
        if exam is None:
            return cls(data, initial={"time_zone": default_zone})
        initial = {"title": exam.title, "time_zone": exam.time_zone}
        initial.update({name: local_initial(getattr(exam, name), exam.tz) for name in cls.WHEN})
        return cls(data, initial=initial)

    def clean(self):
        data = super().clean()
        if "time_zone" in data:
            _convert(self, self.WHEN, zoneinfo.ZoneInfo(data["time_zone"]))
        opens, closes = data.get("booking_opens_at"), data.get("booking_closes_at")
        if opens and closes and not self.errors and closes <= opens:
            self.add_error("booking_closes_at", "Booking must close after it opens.")
        return data


class SeriesForm(forms.Form):
    """A series of equal slots: ``per_day`` slots on each of ``days`` consecutive days."""

    first_day = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), validators=[year_in_range]
    )
    days = forms.IntegerField(min_value=1, max_value=60, initial=1, label="Number of days")
    first_start = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        label="First slot starts at",
    )
    per_day = forms.IntegerField(min_value=1, max_value=100, initial=8, label="Slots per day")
    length_minutes = forms.IntegerField(
        min_value=5, max_value=600, initial=20, label="Slot length (minutes)"
    )
    gap_minutes = forms.IntegerField(
        min_value=0, max_value=600, initial=5, label="Break between slots (minutes)"
    )
    capacity = forms.IntegerField(
        min_value=0,
        max_value=1000,
        initial=1,
        label="Seats per slot",
        error_messages={"min_value": "The number of seats must be 0 or more."},
    )
    room = one_line_field(required=False)
    online_url = forms.URLField(
        max_length=200, required=False, label="Online meeting link", assume_scheme="https"
    )
    examiner = one_line_field(required=False)
    publish = forms.BooleanField(required=False, label="Visible to students right away")

    def __init__(self, *args, exam: Exam, **kwargs):
        super().__init__(*args, **kwargs)
        self.exam = exam

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if not data["room"] and not data["online_url"]:
            raise ValidationError("Give a room, an online meeting link, or both.")
        count = data["days"] * data["per_day"]
        if count > MAX_SERIES:
            raise ValidationError(f"That is {count} slots; at most {MAX_SERIES} at a time.")
        try:
            times = timeutil.series(
                data["first_day"],
                data["days"],
                data["first_start"],
                data["per_day"],
                dt.timedelta(minutes=data["length_minutes"]),
                dt.timedelta(minutes=data["gap_minutes"]),
                self.exam.tz,
            )
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if times[0][0] <= timezone.now():
            first = timeutil.describe(times[0][0], self.exam.tz)
            raise ValidationError(f"The first slot would start in the past ({first}).")
        data["times"] = times
        return data


class SlotForm(forms.Form):
    starts_at = WallClockField(label="Starts")
    ends_at = WallClockField(label="Ends")
    capacity = forms.IntegerField(
        min_value=0,
        max_value=1000,
        label="Seats",
        error_messages={"min_value": "The number of seats must be 0 or more."},
    )
    room = one_line_field(required=False)
    online_url = forms.URLField(
        max_length=200, required=False, label="Online meeting link", assume_scheme="https"
    )
    examiner = one_line_field(required=False)

    @classmethod
    def for_slot(cls, slot: Slot, data=None):
        tz = slot.exam.tz
        initial = {
            "starts_at": local_initial(slot.starts_at, tz),
            "ends_at": local_initial(slot.ends_at, tz),
            "capacity": slot.capacity,
            "room": slot.room,
            "online_url": slot.online_url,
            "examiner": slot.examiner.name if slot.examiner else "",
        }
        form = cls(data, initial=initial)
        form.tz = tz
        return form

    def clean(self):
        data = super().clean()
        _convert(self, ["starts_at", "ends_at"], self.tz)
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end and end <= start and not self.errors:
            self.add_error("ends_at", "The slot must end after it starts.")
        if not data.get("room") and not data.get("online_url") and "online_url" not in self.errors:
            self.add_error("room", "Give a room, an online meeting link, or both.")
        return data


class RosterForm(forms.Form):
    file = forms.FileField(
        label="Roster CSV",
        help_text="Columns name, email, group (group may be empty); comma or semicolon separated.",
    )


class PlaceForm(forms.Form):
    enrollment = IdChoiceField(queryset=None, label="Student")

    def __init__(self, *args, exam: Exam, **kwargs):
        super().__init__(*args, **kwargs)
        booked = dict(
            Booking.objects.filter(slot__exam=exam, status=Booking.ACTIVE).values_list(
                "enrollment_id", "slot__starts_at"
            )
        )

        def label(enrollment) -> str:
            student = enrollment.display_name
            start = booked.get(enrollment.pk)
            return f"{student}: booked {timeutil.describe(start, exam.tz)}" if start else student

        field = self.fields["enrollment"]
        field.queryset = exam.enrollments.select_related("student")
        field.label_from_instance = label
