"""Settings of the exam slot-booking service (development defaults; see settings_prod).

Everything deployment-specific comes from the environment:

DATABASE_URL    unset = SQLite file data/db.sqlite3; postgres://user:pw@host/db for PostgreSQL
DJANGO_DEBUG    1 = debug pages (never in production)
TIME_ZONE       default time zone offered for new exams (IANA name), default UTC
SITE_URL        absolute base URL used in emails and printed login links
EMAIL_*         Django's email settings; EMAIL_BACKEND defaults to the console backend
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "data"))

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-development-only-key-never-use-in-production"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "booking.apps.AdminConfig",  # Django admin with this service's admin site (superusers)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",
    "booking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "booking.api.JsonBodyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "booking.throttle.DeviceCookieMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_env() -> dict:
    """DATABASE_URL -> Django database settings with the concurrency options of the README.

    SQLite: every transaction starts with BEGIN IMMEDIATE (takes the write lock up front, so a
    read-then-write transaction never fails with "database is locked"), WAL journal, 20 s busy
    timeout. PostgreSQL: READ COMMITTED (default) with persistent, health-checked connections.
    """
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
    db = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return db


DATABASES = {"default": database_from_env()}

AUTH_USER_MODEL = "booking.User"
# One backend for every password sign-in (the staff page and Django admin): throttled.
AUTHENTICATION_BACKENDS = ["booking.backends.PasswordBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
PASSWORD_RESET_TIMEOUT = 7 * 24 * 3600  # lifetime of the printed instructor set-up link

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploads: roster CSVs are small; anything larger is refused with a message (booking.roster).
ROSTER_MAX_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "0") == "1"
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
EMAIL_TIMEOUT = 20
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "exam-booking@localhost")

# Sign-in throttle (booking.throttle): limits per window of `seconds`. Behind reverse proxies,
# TRUSTED_PROXY_COUNT says how many; the client address is then read from X-Forwarded-For.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
_WAIT = "wait up to {} minutes and try again."
THROTTLE = {
    "password": {
        "seconds": 15 * 60,
        "per_client": 20,
        "per_account_client": 5,
        "per_account": 10,
        "per_device": 5,
        "message": "Too many failed sign-ins for this account; " + _WAIT.format(15),
    },
    "code-request": {
        "seconds": 3600,
        "per_client": 100,
        "per_account_client": 5,
        "per_account": 10,
        "per_device": 5,
        "message": "Too many codes were requested for this address; " + _WAIT.format(60),
    },
    "code": {
        "seconds": 15 * 60,
        "per_client": 30,
        "message": "Too many wrong codes from your network; " + _WAIT.format(15),
    },
    "link": {
        "seconds": 15 * 60,
        "per_client": 30,
        "message": "Too many sign-in links tried from your network; " + _WAIT.format(15),
    },
    "invite": {
        "seconds": 15 * 60,
        "per_client": 30,
        "message": "Too many wrong invite codes from your network; " + _WAIT.format(15),
    },
    "setup": {
        "seconds": 15 * 60,
        "per_client": 30,
        "message": "Too many set-up links tried from your network; " + _WAIT.format(15),
    },
    "api-token": {
        "seconds": 15 * 60,
        "per_client": 30,
        "message": "Too many wrong API tokens from your network; " + _WAIT.format(15),
    },
}

SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 14 * 24 * 3600
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
CSRF_FAILURE_VIEW = "booking.views.auth.csrf_failure"
