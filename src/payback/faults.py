"""Crash points for the fault tests: named places in the gateway path where a test can make the
process die as abruptly as a power cut (SIGKILL: no cleanup, no rollback handlers, no atexit).

``PAYBACK_CRASH_AT=after_send`` (comma-separated names) arms them for a process; unset (always, in
production) a crash point costs one dictionary lookup. The names: after_intent_commit,
after_send, after_gateway_answer, before_status_commit.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_intent_commit", "after_send", "after_gateway_answer", "before_status_commit")


def crash_point(name: str) -> None:
    armed = os.environ.get("PAYBACK_CRASH_AT")
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
