from django.core.management.base import BaseCommand

from booking import outbox


class Command(BaseCommand):
    help = "Send pending outbox emails (run from cron; emails normally go out right after commit)."

    def handle(self, *args, **options):
        released = outbox.release_stale_claims()
        sent = outbox.deliver()
        self.stdout.write(f"sent {sent} emails ({released} stale claims released)")
