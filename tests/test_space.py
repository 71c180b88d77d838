"""A Space many people share: accounts, the queue that survives a restart, per-run caps, and the API refusing
another person's run with their own session."""
import json
import subprocess
import sys
import time

import pytest
from conftest import REPO, launch_app, start_run, wait_for

from studio import auth, jobs, runs
from studio.config import RunConfig


def users_env(monkeypatch):
    table = {"alice": {"password": auth.hash_password("alice-pw")},
             "bob": {"password": auth.hash_password("bob-pw")},
             "root": {"password": auth.hash_password("root-pw"), "admin": True}}
    monkeypatch.setenv("STUDIO_USERS", json.dumps(table))


def test_passwords_are_stored_hashed_and_checked(monkeypatch):
    users_env(monkeypatch)
    stored = auth.users_table()["alice"]["password"]
    assert stored.startswith("pbkdf2_sha256$") and "alice-pw" not in stored
    assert auth.check_login("alice", "alice-pw") and not auth.check_login("alice", "bob-pw")
    assert not auth.check_login("mallory", "x")
    assert auth.admins() == {"root"}
    assert auth.gradio_auth() is auth.check_login


def test_one_user_on_localhost_needs_no_sign_in(monkeypatch):
    for var in ("STUDIO_USERS", "STUDIO_USERS_FILE", "STUDIO_USER", "STUDIO_PASSWORD", "SPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    assert auth.user_from_request(None) == auth.LOCAL and auth.gradio_auth() is None


def test_the_single_user_pair_still_works(monkeypatch):
    monkeypatch.delenv("STUDIO_USERS", raising=False)
    monkeypatch.setenv("STUDIO_USER", "reader")
    monkeypatch.setenv("STUDIO_PASSWORD", "s3cret")
    assert auth.check_login("reader", "s3cret") and not auth.check_login("reader", "nope")

    class Req:
        username = "reader"
    assert auth.user_from_request(Req()) == auth.User("reader", admin=True)


@pytest.mark.slow
def test_the_queue_survives_an_app_restart(machine_free):
    """Queued while the machine is busy; the app goes away; a new app process starts it when the GPU frees."""
    busy = start_run(RunConfig(run_name="busy"))
    wait_for(busy, states=("running",), timeout=240)
    waiting = runs.create_run(RunConfig(run_name="waiting"), owner="alice")
    runs.enqueue(waiting, owner="alice")
    assert runs.dispatch() is None and runs.view(waiting)["state"] == "queued"
    assert jobs.status(waiting.name, auth.User("alice"))["ahead"] == 1
    runs.kill(busy)  # the machine frees while no app is running
    time.sleep(1)
    assert runs.view(waiting)["state"] == "queued"  # nothing starts it until an app is back
    code = ("import sys, time; sys.path.insert(0, '.'); from studio import runs; runs.SCHEDULER.start(); "
            "time.sleep(8)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
    status = wait_for(waiting, states=("starting", "running", *runs.FINAL_STATES), timeout=60)
    assert status["state"] in ("starting", "running", "completed"), status
    runs.kill(waiting)


@pytest.mark.slow
def test_a_run_that_reaches_the_step_cap_stops_with_a_checkpoint_and_says_why(machine_free):
    cfg = RunConfig(run_name="capped")
    cfg.train.max_steps, cfg.data.max_rows = 50, 120
    run_dir = start_run(cfg, env={"STUDIO_CAP_STEPS": "3"})
    status = wait_for(run_dir, timeout=240)
    assert status["state"] == "stopped" and status["stop_reason"] == "steps:3" and status["step"] == 3
    assert runs.last_checkpoint(run_dir) is not None
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    from studio.ui import run_view
    summary = run_view.summary_text(runs.read_metrics(run_dir).events, status)
    assert "Stopped at the deployment's limit: 3 steps per run" in summary


def test_a_dataset_over_the_row_cap_is_refused(monkeypatch):
    monkeypatch.setenv("STUDIO_CAP_ROWS", "100")
    cfg = RunConfig(run_name="big")
    cfg.train.max_steps = 0  # epochs: every one of the 600 rows
    with pytest.raises(jobs.Refused) as info:
        jobs.preflight(cfg, None, auth.LOCAL)
    assert info.value.code == "err_cap_rows" and info.value.params == {"rows": 600, "cap": 100}


@pytest.mark.slow
def test_the_api_refuses_another_persons_run_with_their_own_session(monkeypatch):
    from gradio_client import Client
    users_env(monkeypatch)
    alices = runs.create_run(RunConfig(run_name="alices-run"), owner="alice")
    demo = launch_app()
    try:
        bob = Client(demo.local_url, auth=("bob", "bob-pw"), verbose=False)
        for api_name, kwargs in (("/training_status", {}), ("/stop_training", {}), ("/resume_training", {}),
                                 ("/chat", {"message": "hi"})):
            with pytest.raises(Exception, match="No such run"):
                bob.predict(run_id=alices.name, api_name=api_name, **kwargs)
        assert alices.name not in [r["id"] for r in bob.predict(api_name="/list_runs")]
        alice = Client(demo.local_url, auth=("alice", "alice-pw"), verbose=False)
        assert alice.predict(run_id=alices.name, api_name="/training_status")["state"] == "created"
        root = Client(demo.local_url, auth=("root", "root-pw"), verbose=False)
        assert alices.name in [r["id"] for r in root.predict(api_name="/list_runs")]
    finally:
        demo.close()


def test_sign_in_edges(monkeypatch):
    """Non-ASCII names and passwords are refused, not a 500; an unknown name costs the same hash as a known one;
    600k iterations for new hashes, while older hashes (they name their own count) still verify."""
    monkeypatch.delenv("STUDIO_USERS", raising=False)
    monkeypatch.setenv("STUDIO_USER", "reader")
    monkeypatch.setenv("STUDIO_PASSWORD", "s3cret")
    assert not auth.check_login("읽는이", "비밀") and not auth.check_login("reader", "s3crét")
    monkeypatch.setenv("STUDIO_USER", "읽는이")
    monkeypatch.setenv("STUDIO_PASSWORD", "비밀번호")
    assert auth.check_login("읽는이", "비밀번호") and not auth.check_login("읽는이", "x")
    monkeypatch.delenv("STUDIO_USER")
    monkeypatch.delenv("STUDIO_PASSWORD")
    old = auth.hash_password("alice-pw", iterations=200_000)
    monkeypatch.setenv("STUDIO_USERS", json.dumps({"alice": {"password": old}}))
    assert auth.check_login("alice", "alice-pw")
    assert auth.hash_password("x").split("$")[1] == "600000"
    import hashlib
    calls = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *a: calls.append(a[3]) or real(*a))
    auth._dummy_hash()  # made once, before the timing matters
    calls.clear()
    auth.check_login("alice", "wrong")
    auth.check_login("mallory", "wrong")
    auth.check_login("명희", "wrong")
    assert len(calls) == 3 and calls[1] == calls[2] == auth.ITERATIONS  # one full hash for every name


def test_a_hugging_face_session_names_the_person_and_nothing_else_does(monkeypatch):
    class Request:
        def __init__(self, session):
            self.session = session

    future, past = time.time() + 3600, time.time() - 1
    assert auth.oauth_user(Request({"oauth_info": {"userinfo": {"preferred_username": "alice"},
                                                   "expires_at": future}})) == "alice"
    assert auth.oauth_user(Request({"oauth_info": {"userinfo": {"preferred_username": "alice"},
                                                   "expires_at": past}})) is None  # expired
    assert auth.oauth_user(Request({})) is None

    class NoMiddleware:
        @property
        def session(self):
            raise AssertionError("SessionMiddleware must be installed to access request.session")
    assert auth.oauth_user(NoMiddleware()) is None


@pytest.mark.slow
def test_a_space_with_oauth_names_people_by_their_hugging_face_session_and_refuses_everyone_else(monkeypatch):
    """The OAuth path end to end, with a session cookie made as Gradio's "Sign in with Hugging Face" leaves it
    (Starlette's signed session, keyed by the Space's OAuth secret): no network, the real middleware and routes."""
    import base64
    import hashlib
    import urllib.error
    import urllib.request

    import itsdangerous
    from gradio_client import Client
    for var in ("STUDIO_USERS", "STUDIO_USERS_FILE", "STUDIO_USER", "STUDIO_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SPACE_ID", "someone/lora-studio")
    monkeypatch.setenv("SYSTEM", "spaces")  # what a Space sets: Gradio then mounts the real OAuth routes
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "client-secret")
    # what a Space with `hf_oauth: true` puts in the environment; gradio reads these at its import
    for name, value in (("OAUTH_CLIENT_ID", "client-id"), ("OAUTH_CLIENT_SECRET", "client-secret"),
                        ("OAUTH_SCOPES", "openid profile"), ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(f"gradio.oauth.{name}", value)
    alices = runs.create_run(RunConfig(run_name="alices-oauth-run"), owner="alice")
    bobs = runs.create_run(RunConfig(run_name="bobs-oauth-run"), owner="bob")

    def session_cookie(name: str) -> str:
        secret = hashlib.sha256(b"client-secret-v4").hexdigest()
        session = {"oauth_info": {"userinfo": {"preferred_username": name}, "expires_at": time.time() + 3600}}
        data = base64.b64encode(json.dumps(session).encode())
        return "session=" + itsdangerous.TimestampSigner(secret).sign(data).decode()

    demo = launch_app()
    try:
        page = urllib.request.Request(demo.local_url, headers={"Accept": "text/html"})

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.build_opener(NoRedirect).open(page)
        assert info.value.code in (302, 307) and "/login/huggingface" in info.value.headers["location"]
        with pytest.raises(Exception):
            Client(demo.local_url, verbose=False).predict(api_name="/list_runs")  # anonymous: refused
        alice = Client(demo.local_url, headers={"Cookie": session_cookie("alice")}, verbose=False)
        listed = [r["id"] for r in alice.predict(api_name="/list_runs")]  # (earlier tests made alice runs too)
        assert alices.name in listed and bobs.name not in listed
        assert all(runs.read_meta(runs.runs_root() / run_id)["owner"] == "alice" for run_id in listed)
        with pytest.raises(Exception, match="No such run"):
            alice.predict(run_id=bobs.name, api_name="/training_status")
        assert "alices-oauth-run" in alice.predict(run_id=alices.name, api_name="/training_status")["run_id"]
    finally:
        demo.close()
