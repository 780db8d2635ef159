"""Times in an exam's own time zone: ``{{ slot.starts_at|local:exam }}`` and friends."""

from django import template

from .. import timeutil

register = template.Library()


@register.filter
def local(instant, exam):
    """'Mon 30 Mar 2026, 09:00 CEST' in the exam's time zone."""
    return timeutil.describe(instant, exam.tz) if instant else ""


@register.filter
def local_time(instant, exam):
    """'09:00' in the exam's time zone."""
    return f"{timeutil.local(instant, exam.tz):%H:%M}" if instant else ""
