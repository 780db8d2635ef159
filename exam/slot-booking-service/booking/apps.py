from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BookingConfig(AppConfig):
    name = "booking"
    verbose_name = "Exam slot booking"
    default_auto_field = "django.db.models.BigAutoField"
    default = True

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from .throttle import trust_after_sign_in

        user_logged_in.connect(trust_after_sign_in, dispatch_uid="booking-trust-device")


class AdminConfig(admin_apps.AdminConfig):
    """Django admin, with the site that only superusers may use (``booking.adminsite``)."""

    default = False

    default_site = "booking.adminsite.BookingAdminSite"
