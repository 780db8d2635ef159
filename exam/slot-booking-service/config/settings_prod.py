"""Production settings: `DJANGO_SETTINGS_MODULE=config.settings_prod`.

Requires DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS; assumes HTTPS in front (one reverse proxy
that sets X-Forwarded-Proto and appends the client address to X-Forwarded-For).
`manage.py check --deploy` is clean with these settings.
"""

import os

from .settings import *  # noqa: F403

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
CSRF_TRUSTED_ORIGINS = [f"https://{host}" for host in ALLOWED_HOSTS]

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The reverse proxy appends the client's address to X-Forwarded-For; the sign-in throttle
# counts per client address, so it must read it there (set 0 if nothing is in front).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "1"))
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
WHITENOISE_USE_FINDERS = False
