"""The admin site: superusers only; sign-in throttled like every other (a separate module
from ``booking.admin``, which Django imports only after the site exists)."""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError


class ThrottledLoginForm(AdminAuthenticationForm):
    """Shows the throttle's message (instead of "wrong password") when it refused."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            refusal = getattr(self.request, "throttle_refusal", None)
            if refusal:
                raise ValidationError(refusal, code="throttled") from None
            raise


class BookingAdminSite(admin.AdminSite):
    site_header = "Exam slot booking: administration"
    login_form = ThrottledLoginForm

    def has_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def login(self, request, extra_context=None):
        """As Django's, answering a refused sign-in 429 and a wrong one 400 (not 200)."""
        response = super().login(request, extra_context)
        if request.method == "POST" and response.status_code == 200:
            response.status_code = 429 if getattr(request, "throttle_refusal", None) else 400
        return response


class ModelAdmin(admin.ModelAdmin):
    """Answers a change or add form sent with errors 400 (Django re-renders it with 200)."""

    def changeform_view(self, request, *args, **kwargs):
        response = super().changeform_view(request, *args, **kwargs)
        if request.method == "POST" and response.status_code == 200:
            response.status_code = 400  # saving redirects; a 200 is the form with its errors
        return response
