"""Timestamped progress lines: a lease call cut short still shows where it was."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

# Set by job.sh to the call's start (seconds since the epoch): every line then says how far
# into the call's 10 minutes it was printed.
CALL_STARTED_VARIABLE = "LEASE_CALL_STARTED"
_IMPORTED = time.time()


def call_started() -> float:
    """When this call began: job.sh's clock, else when this process started."""
    return float(os.environ.get(CALL_STARTED_VARIABLE) or _IMPORTED)


def stamp() -> str:
    return f"[{datetime.now(timezone.utc):%H:%M:%S} +{time.time() - call_started():5.0f}s]"


def log(message: str) -> None:
    print(f"{stamp()} {message}", flush=True)
