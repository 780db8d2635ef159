import sys

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from booking.models import User

NEED_ADDRESS = (
    "No instructor exists yet. Choose the first instructor's (administrator's) address: "
    "manage.py bootstrap --first you@your-university.example (make run ADMIN_EMAIL=...)."
)


class Command(BaseCommand):
    help = (
        "Create the first instructor (a superuser, at the address you choose) and print a "
        "one-time link to set the password; printed again on each start until an instructor "
        "has a password. With --email and instructors already there: create that instructor "
        "(staff, not superuser), or print a new link for them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", help="create this instructor, or print a new link for them")
        parser.add_argument(
            "--first", help="the first instructor's address; ignored once an instructor exists"
        )

    def handle(self, *args, email=None, first=None, **options):
        staff = User.objects.filter(is_staff=True).order_by("pk")
        if not email and first and not staff.exists():
            email = first
        if not email:
            if any(user.has_usable_password() for user in staff):
                self.stdout.write("An instructor account is set up; nothing to do.")
                return
            oldest = staff.first()
            email = oldest.email if oldest else self._ask()
        email = email.strip().lower()
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"{email!r} is not an email address.") from exc
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

    def _ask(self) -> str:
        """The first address: asked for on a terminal, else an error that says how to give it
        (there is no default address: a well-known superuser name would be guessed)."""
        if not sys.stdin.isatty():
            raise CommandError(NEED_ADDRESS)
        answer = input("Email address of the first instructor (administrator): ").strip()
        if not answer:
            raise CommandError(NEED_ADDRESS)
        return answer
