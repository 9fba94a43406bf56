"""The server's signing key (customer portal links): ``PAYBACK_SECRET_KEY``, or a random key
created once and kept in ``PAYBACK_SECRET_KEY_FILE`` (mode 0600), so a single-machine install
works without configuration and its links survive restarts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from payback.settings import Settings


def secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.secret_key_file)
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
