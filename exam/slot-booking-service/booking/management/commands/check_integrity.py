from django.core.management.base import BaseCommand, CommandError

from booking.services import integrity_report


class Command(BaseCommand):
    help = "Verify that every slot's seat counter equals its number of active bookings."

    def handle(self, *args, **options):
        drift = integrity_report()
        if drift:
            lines = [f"slot {d.slot_id}: counter {d.counter}, bookings {d.bookings}" for d in drift]
            raise CommandError("seat counters differ from bookings:\n" + "\n".join(lines))
        self.stdout.write("ok: every seat counter equals its active bookings")
