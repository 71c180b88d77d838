"""Who is asking, and what they may see.

Three ways to know who someone is, from the deployment's settings:
  - a Hugging Face Space with OAuth on (`hf_oauth: true` in README.md): "Sign in with Hugging Face". Gradio's
    public `auth_dependency` names the signed-in person on every request (`oauth_user`); a visitor who is not
    signed in is sent to the sign-in page, and every endpoint refuses them;
  - a users table: STUDIO_USERS_FILE (a YAML/JSON file) or STUDIO_USERS (the same text in a variable),
    `{name: {password: "pbkdf2_sha256$...", admin: true}}`; make a hash with `python -m studio.auth hash`;
  - the single STUDIO_USER / STUDIO_PASSWORD pair (that user is the admin).
With none of them (localhost, one person) everyone is the local user, who sees everything.
STUDIO_ADMINS (comma-separated names) adds admins, e.g. Hugging Face accounts on a Space.
Passwords are compared against hashes only (as bytes, in constant time, and an unknown name costs the same
hash as a known one); no password or token is ever written to a run folder.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ITERATIONS = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256; older hashes name their own count


@dataclass(frozen=True)
class User:
    name: str
    admin: bool = False

    def can_see(self, owner: str | None) -> bool:
        return self.admin or (owner or LOCAL.name) == self.name


LOCAL = User("local", admin=True)  # localhost, no sign-in: one person, who owns everything


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, iterations, salt, digest = stored.split("$")
        if algo != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def users_table() -> dict[str, dict]:
    """name -> {password: hash, admin: bool}, from STUDIO_USERS_FILE or STUDIO_USERS; {} when neither is set."""
    text = os.environ.get("STUDIO_USERS", "")
    if os.environ.get("STUDIO_USERS_FILE"):
        text = Path(os.environ["STUDIO_USERS_FILE"]).read_text(encoding="utf-8")
    if not text.strip():
        return {}
    import yaml
    table = yaml.safe_load(text) or {}
    if not isinstance(table, dict) or not all(isinstance(v, dict) and "password" in v for v in table.values()):
        raise ValueError("STUDIO_USERS: expected {name: {password: <hash>, admin: true|false}}")
    return {str(k): v for k, v in table.items()}


def admins() -> set[str]:
    names = {n.strip() for n in os.environ.get("STUDIO_ADMINS", "").split(",") if n.strip()}
    names |= {n for n, v in users_table().items() if v.get("admin")}
    if os.environ.get("STUDIO_USER"):
        names.add(os.environ["STUDIO_USER"])
    return names


def oauth_enabled() -> bool:
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


def sign_in_required() -> bool:
    return bool(users_table() or (os.environ.get("STUDIO_USER") and os.environ.get("STUDIO_PASSWORD"))
                or oauth_enabled())


_DUMMY_HASH: list[str] = []  # verified for unknown names, so the time taken does not tell who exists


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(secrets.token_hex(16)))
    return _DUMMY_HASH[0]


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of any two texts (hmac.compare_digest refuses non-ASCII str: compare bytes)."""
    return hmac.compare_digest(str(a).encode("utf-8"), str(b).encode("utf-8"))


def check_login(username: str, password: str) -> bool:
    """Gradio's auth= callable: the users table, or the single STUDIO_USER/STUDIO_PASSWORD pair."""
    username, password = str(username or ""), str(password or "")
    table = users_table()
    known = username in table
    if table:  # one hash either way
        ok = verify_password(password, str(table[username]["password"]) if known else _dummy_hash())
        if known:
            return ok
    user, pw = os.environ.get("STUDIO_USER"), os.environ.get("STUDIO_PASSWORD")
    return bool(user and pw) and _same(username, user) & _same(password, pw)


def gradio_auth():
    """What to pass to launch(auth=...): None when no password sign-in is configured."""
    if users_table() or (os.environ.get("STUDIO_USER") and os.environ.get("STUDIO_PASSWORD")):
        return check_login
    return None


def oauth_user(request) -> str | None:
    """Gradio's auth_dependency on a Space with OAuth (and no password sign-in): the signed-in Hugging Face
    account's name from the session Gradio's "Sign in with Hugging Face" wrote, None for anyone else."""
    try:
        info = request.session.get("oauth_info") or {}
    except (AssertionError, AttributeError):  # no session middleware: nobody has signed in
        return None
    if info.get("expires_at") is not None and info["expires_at"] < time.time():
        return None
    name = (info.get("userinfo") or {}).get("preferred_username")
    return str(name) if name else None


def user_from_request(request) -> User | None:
    """The signed-in person of a Gradio request (password sign-in or Hugging Face OAuth: Gradio puts the name
    in request.username either way); LOCAL when no sign-in is configured; None for an anonymous caller."""
    if not sign_in_required():
        return LOCAL
    name = getattr(request, "username", None) if request is not None else None
    if not name:
        return None
    return User(str(name), admin=str(name) in admins())


def main(argv: list[str]) -> int:
    if argv[:1] == ["hash"]:
        import getpass
        password = argv[1] if len(argv) > 1 else getpass.getpass("password: ")
        print(hash_password(password))
        return 0
    print("usage: python -m studio.auth hash [PASSWORD]    (prints a hash for STUDIO_USERS)")
    print(json.dumps({"example": {"alice": {"password": "pbkdf2_sha256$...", "admin": True}}}))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
