"""Exports served from the run's own folder, never copied: a link only its owner is given.

The Export tab (after the owner check) makes a link to a file inside the run folder, signed with this app
process's secret and valid for a day; the route below serves exactly that file, streamed from disk. Gradio's
own file serving would copy every export into its cache (a merged model is 8-16 GB) and serves only folders it
was told about at launch (a Space's /data runs folder was not one: every export failed there).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from studio import runs

PREFIX = "studio/download"  # relative to the app's page: works under a Space's root and a mount path alike
TTL_S = 24 * 3600
_SECRET = secrets.token_bytes(32)  # a new app process: old links end, the Export tab makes new ones


def _sign(run_id: str, rel: str, expires: int) -> str:
    return hmac.new(_SECRET, f"{run_id}/{rel}|{expires}".encode(), hashlib.sha256).hexdigest()


def link(run_dir: Path, file: Path) -> str:
    """A download link for `file` inside `run_dir` (the caller checked that the person owns the run)."""
    rel = Path(file).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    expires = int(time.time()) + TTL_S
    return f"{PREFIX}/{run_dir.name}/{quote(rel)}?expires={expires}&sig={_sign(run_dir.name, rel, expires)}"


def listing(run_dir: Path, files: list[Path]) -> list[dict]:
    """What an export endpoint answers: each file's name, size and link."""
    return [{"name": Path(f).name, "bytes": Path(f).stat().st_size, "url": link(run_dir, Path(f))} for f in files]


def markdown(items: list[dict]) -> str:
    return "\n".join(f"- [{i['name']}]({i['url']}) · {i['bytes'] / 2**20:,.1f} MB" for i in items)


async def serve(request: Request):
    run_id, rel = request.path_params["run_id"], request.path_params["path"]
    try:
        expires = int(request.query_params.get("expires", "0"))
    except ValueError:
        expires = 0
    good = hmac.compare_digest(_sign(run_id, rel, expires), request.query_params.get("sig", ""))
    if not good or expires < time.time():
        return PlainTextResponse("This download link is not valid (any more): make the export again.", 403)
    try:
        run_dir = runs.resolve_run(run_id)
    except ValueError:
        return PlainTextResponse("not found", 404)
    path = (run_dir / rel).resolve()
    if not path.is_relative_to(run_dir) or not path.is_file():
        return PlainTextResponse("not found", 404)
    return FileResponse(path, filename=path.name)


def routes() -> list[Route]:
    return [Route(f"/{PREFIX}/{{run_id}}/{{path:path}}", serve)]


async def sign_in_first(request: Request, exc):
    """A Space with OAuth: a visitor who is not signed in goes to "Sign in with Hugging Face" (Gradio's own
    answer would be a bare 401); API callers keep the 401."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"/login/huggingface?_target_url={quote(str(request.url.path))}")
    return PlainTextResponse(str(getattr(exc, "detail", "Not authenticated")), 401)
