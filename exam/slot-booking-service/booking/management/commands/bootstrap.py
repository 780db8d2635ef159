from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from booking.models import User


class Command(BaseCommand):
    help = (
        "Create the first instructor if there is none and print a one-time link to set the "
        "password (printed again on each start until an instructor has a password). With "
        "--email, create that instructor (staff, not superuser), or print a new link for them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", help="instructor email (default: instructor@example.org)")

    def handle(self, *args, email=None, **options):
        staff = User.objects.filter(is_staff=True).order_by("pk")
        if email is None:
            if any(user.has_usable_password() for user in staff):
                self.stdout.write("An instructor account is set up; nothing to do.")
                return
            first = staff.first()
            email = first.email if first else "instructor@example.org"
        email = email.strip().lower()
        user = User.objects.filter(email=email).first()
        if user is None and not staff.exists():  # the first instructor also administers
            user = User.objects.create_superuser(email, name="Instructor")
        elif user is None:
            user = User.objects.create_user(email, name="Instructor", is_staff=True)
        elif not user.is_staff:
            raise CommandError(f"{email} is a student account; choose another address.")
        link = settings.SITE_URL + reverse(
            "staff-setup",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        self.stdout.write(
            f"Instructor {email}: choose your password at\n\n  {link}\n\n"
            "The link works once (it expires when the password is set, or after 7 days)."
        )
