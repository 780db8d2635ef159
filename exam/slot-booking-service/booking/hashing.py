"""Keyed hashes of secrets (codes, links, tokens): the database never holds them in clear."""

import hashlib
import hmac

from django.conf import settings


def digest(secret: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
