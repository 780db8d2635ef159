"""A password hasher for tests that hash over HTTP: PBKDF2 with one iteration (never in
production; the tests are about counting attempts, not about the hash)."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2(PBKDF2PasswordHasher):
    iterations = 1
