"""Settings of the gunicorn server in test_throttle_parallel.py: behind one (simulated) reverse
proxy, so each request names its client address in X-Forwarded-For, and with throttle windows
of 10**8 s, so that a burst never straddles a window boundary (which would double a limit).
Passwords use a fast hasher (the throttle does not depend on it)."""

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["tests.fast_hasher.OneIterationPBKDF2"]

TRUSTED_PROXY_COUNT = 1
THROTTLE = {path: {**rules, "seconds": 10**8} for path, rules in THROTTLE.items()}  # noqa: F405
