"""What the deployment allows: per-run caps and a per-person queue limit (a shared Space sets them), read by the
app before Start and by the worker while it trains."""
from __future__ import annotations

import os


def _number(name: str) -> int:
    try:
        return max(0, int(float(os.environ.get(name, "0") or 0)))
    except ValueError:
        return 0


def caps() -> dict:
    """Per-run limits set by the deployment (0 = none): minutes (across Resumes), optimizer steps, dataset rows."""
    return {"minutes": _number("STUDIO_CAP_MINUTES"), "steps": _number("STUDIO_CAP_STEPS"),
            "rows": _number("STUDIO_CAP_ROWS")}


def max_queued_per_person() -> int:
    """How many runs one person may have waiting or training at once (0 = no limit): a sweep counts each run."""
    return _number("STUDIO_MAX_QUEUED_PER_PERSON")
