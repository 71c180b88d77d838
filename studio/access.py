"""What a person may name: one rule, applied where things are opened.

  models    a preset, a Hub id (owner/name), or a folder on this machine. On a shared server (a Space, sign-in
            on, or STUDIO_RESTRICT_PATHS=1) only the folders the deployment offers: the bundled assets and
            STUDIO_MODEL_DIRS (folders separated by ':'). Any other name is a Hub id or nothing, so no answer
            tells a folder that exists from one that does not.
  datasets  a Hub id, or a file: on a shared server only the person's own uploads and the bundled assets
            (studio/data.py check_path, where files are read).
  runs      by id, after the owner check (studio/jobs.py open_run); a run's files only through it.
  exports   served from the run's folder by a link only its owner is given (studio/ui/downloads.py).

The worker applies the same rule to its config.yaml (a hand-edited one reaches no more than the form could).
"""
from __future__ import annotations

import os
from pathlib import Path

from studio.config import REPO_ROOT, resolve_path


def shared() -> bool:
    """Is this server shared by people who must not reach each other's files?"""
    from studio import auth
    return bool(os.environ.get("SPACE_ID") or os.environ.get("STUDIO_RESTRICT_PATHS") or auth.sign_in_required())


def model_roots() -> list[Path]:
    """The folders a model may be read from on a shared server."""
    extra = [Path(p).expanduser() for p in os.environ.get("STUDIO_MODEL_DIRS", "").split(os.pathsep) if p.strip()]
    return [REPO_ROOT / "assets", *extra]


def model_folder(name: str) -> Path | None:
    """The local folder `name` names, if a person may use it here; None: it is a Hub id (or nothing)."""
    name = (name or "").strip()
    if not name or "\x00" in name:
        return None
    path = resolve_path(name)
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return None
    if shared() and not any(real.is_relative_to(root.resolve()) for root in model_roots()):
        return None
    return real if real.is_dir() else None
