"""What the deployment allows each run: per-run caps (a shared Space sets them), read by the app before Start
and by the worker while it trains."""
from __future__ import annotations

import os


def caps() -> dict:
    """Per-run limits set by the deployment (0 = none): minutes (across Resumes), optimizer steps, dataset rows."""
    def num(name):
        try:
            return max(0, int(float(os.environ.get(name, "0") or 0)))
        except ValueError:
            return 0
    return {"minutes": num("STUDIO_CAP_MINUTES"), "steps": num("STUDIO_CAP_STEPS"), "rows": num("STUDIO_CAP_ROWS")}
