"""The disk a shared studio may fill: a budget per person and in all, and what goes first when it is full.

STUDIO_DISK_CAP_GB     what one person's runs and uploads may take (0 or unset: no cap)
STUDIO_DISK_TOTAL_GB   what the whole runs folder may take (0 or unset: no cap)

What goes first, oldest first: caches (prepared rows, base GGUFs) and exports (merged models, GGUFs, zips, all
made again on demand). Runs, adapters, checkpoints and uploads are the person's: they go only when the person
deletes a run. A person still over their budget after that is told before Start or an export, with how much
to delete.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 1024 ** 3


def caps() -> tuple[float, float]:
    def num(name):
        try:
            return max(0.0, float(os.environ.get(name, "0") or 0))
        except ValueError:
            return 0.0
    return num("STUDIO_DISK_CAP_GB"), num("STUDIO_DISK_TOTAL_GB")


def size(path: Path) -> int:
    """Bytes under `path` (files counted once, links not followed)."""
    total = 0
    try:
        if path.is_file() or path.is_symlink():
            return path.lstat().st_size
        stack = [path]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        pass
    return total


@dataclass
class Spare:
    """Something that can go: a cache entry (owner None) or one export of a run."""
    path: Path
    owner: str | None
    bytes: int
    used_at: float


def spares() -> list[Spare]:
    """Caches and exports, least recently used first."""
    from studio import prepare, runs
    root = runs.runs_root()
    out = []
    for folder in (prepare.cache_root(), root / ".gguf-bases"):
        if folder.is_dir():
            for entry in folder.iterdir():
                out.append(Spare(entry, None, size(entry), entry.stat().st_atime))
    for run in runs.list_runs():
        export = root / run["id"] / "export"
        if export.is_dir():
            for entry in export.iterdir():
                out.append(Spare(entry, run["owner"], size(entry), entry.stat().st_mtime))
    return sorted(out, key=lambda s: s.used_at)


def usage(owner: str) -> int:
    """Bytes of one person's runs and uploads."""
    from studio import data, runs
    total = size(data.uploads_dir(owner))
    for run in runs.list_runs(owner=owner):
        total += size(runs.runs_root() / run["id"])
    return total


def make_room(owner: str) -> tuple[int, int]:
    """Evict spares until `owner` and the whole folder are within their budgets (or nothing is left to evict);
    returns (the person's bytes, the whole folder's bytes) as they are then (0 where there is no cap)."""
    from studio import runs
    per_person, in_all = caps()
    if not per_person and not in_all:
        return 0, 0
    mine = usage(owner) if per_person else 0
    total = size(runs.runs_root()) if in_all else 0
    for spare in spares():
        over_mine = per_person and mine > per_person * GIB and spare.owner == owner
        over_all = in_all and total > in_all * GIB
        if not (over_mine or over_all):
            continue
        shutil.rmtree(spare.path, ignore_errors=True) if spare.path.is_dir() else spare.path.unlink(missing_ok=True)
        total -= spare.bytes
        if spare.owner == owner:
            mine -= spare.bytes
    return mine, total


def over_budget(owner: str) -> tuple[str, dict] | None:
    """None when `owner` may write more; else a message code and what to tell them (GiB used, the cap, how much
    to delete)."""
    mine, total = make_room(owner)
    per_person, in_all = caps()
    if per_person and mine > per_person * GIB:
        return "err_disk_quota", {"used": round(mine / GIB, 2), "cap": per_person,
                                  "free_up": round((mine - per_person * GIB) / GIB, 2)}
    if in_all and total > in_all * GIB:
        return "err_disk_full", {"used": round(total / GIB, 2), "cap": in_all}
    return None


def touch(path: Path) -> None:
    """A cache entry was used: it goes later (the access time, which noatime mounts do not keep, set by hand)."""
    try:
        os.utime(path, (time.time(), path.stat().st_mtime))
    except OSError:
        pass
