"""Many users at once: one worker per machine, one owner per run, caches keyed by who asks, the path rule
where files are read, Hub calls that cannot hang, tokens never written, optional login."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import KO, REPO, launch_app, stop_everything, wait_for

from studio import data, jobs, models, runs, templates
from studio.auth import LOCAL, User
from studio.config import RunConfig

SECRET = "hf_TESTSECRETdoNotWrite1234567890"


def long_config(name: str) -> RunConfig:
    cfg = RunConfig(run_name=name)
    cfg.train.max_steps, cfg.data.max_rows = 400, 200
    return cfg


def live_workers() -> list[str]:
    return [p.name for p in runs.runs_root().iterdir() if p.is_dir() and runs.worker_alive(p)]


@pytest.mark.slow
def test_start_and_resume_from_10_threads_and_2_processes_make_exactly_one_worker():
    stop_everything()
    resumable = runs.create_run(RunConfig(run_name="resume-me"))
    (resumable / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    runs.write_json_atomic(resumable / "status.json", {"state": "stopped", "step": 3})
    before = {p.name for p in runs.runs_root().iterdir()}
    seen_alive: list[int] = []
    go = threading.Event()
    errors: list[BaseException] = []

    def starter(i):
        go.wait()
        try:
            if i % 2:
                jobs.resume(resumable.name, LOCAL)
            else:
                jobs.start(long_config(f"crowd-{i}"), LOCAL)
        except jobs.Refused as exc:  # a Resume that lost the race to another Resume of the same run
            assert exc.code == "err_already_running"
        except BaseException as exc:
            errors.append(exc)

    code = ("import sys; sys.path.insert(0, '.'); from studio import jobs; from studio.auth import LOCAL; "
            "from studio.config import RunConfig; c = RunConfig(run_name='proc'); c.train.max_steps = 400; "
            "print(jobs.start(c, LOCAL)['run_id'])")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    threads = [threading.Thread(target=starter, args=(i,)) for i in range(10)]
    for th in threads:
        th.start()
    go.set()
    while any(th.is_alive() for th in threads) or any(p.poll() is None for p in procs):
        seen_alive.append(len(live_workers()))
        time.sleep(0.05)
    outs = [p.communicate()[0].strip() for p in procs]
    try:
        assert not errors, errors
        assert all(p.returncode == 0 for p in procs) and all(outs)
        for _ in range(20):  # and for a while after: never two
            seen_alive.append(len(live_workers()))
            time.sleep(0.1)
        assert max(seen_alive) == 1, seen_alive
        new = {p.name for p in runs.runs_root().iterdir()} - before
        new_runs = [n for n in new if (runs.runs_root() / n).is_dir()]
        assert len(new_runs) == 5 + 2  # every Start made exactly one run folder
        for name in new_runs + [resumable.name]:  # none lost or corrupted
            run_dir = runs.runs_root() / name
            RunConfig.load(run_dir / "config.yaml")
            assert runs.read_meta(run_dir)["owner"] == "local"
            assert runs.view(run_dir)["state"] in ("queued", "starting", "running")
        assert sum(1 for e in runs.queued() if e["run"] == resumable.name) <= 1  # one entry per run
        assert len(runs.queued()) + len(live_workers()) == 8
    finally:
        stop_everything()


def test_runs_belong_to_their_owner(runs_dir):
    alice, bob, admin = User("alice"), User("bob"), User("root", admin=True)
    run_dir = runs.create_run(RunConfig(run_name="alices"), owner="alice")
    assert jobs.open_run(run_dir.name, alice) == run_dir
    assert jobs.open_run(run_dir.name, admin) == run_dir
    for action in (lambda: jobs.status(run_dir.name, bob), lambda: jobs.stop(run_dir.name, bob),
                   lambda: jobs.resume(run_dir.name, bob), lambda: jobs.open_run(run_dir.name, bob)):
        with pytest.raises(jobs.Refused) as info:
            action()
        assert info.value.code == "err_no_such_run"  # the same words as for a run that does not exist
    assert run_dir.name in [r["id"] for r in jobs.visible_runs(alice)]
    assert run_dir.name not in [r["id"] for r in jobs.visible_runs(bob)]
    assert run_dir.name in [r["id"] for r in jobs.visible_runs(admin)]


def test_the_dataset_cache_is_keyed_by_the_token(monkeypatch):
    """A private Hub dataset read with one person's token is never served to someone without it."""
    calls = []

    def fake_hub(repo_id, split="train", token=None):
        calls.append(token)
        if token != SECRET:
            raise data.DataError("could not load from the Hub: 401 Unauthorized", file=repo_id)
        return data._make_dataset(repo_id, [{"messages": [{"role": "user", "content": "hi"},
                                                          {"role": "assistant", "content": "yo"}]}], ["messages"])

    monkeypatch.setattr(data, "load_hub", fake_hub)
    cache = data.DatasetCache()
    assert len(cache.get("hub", "me/private", "train", 0, SECRET)) == 1
    assert len(cache.get("hub", "me/private", "train", 0, SECRET)) == 1 and calls == [SECRET]  # cached
    with pytest.raises(data.DataError, match="401"):
        cache.get("hub", "me/private", "train", 0, None)
    with pytest.raises(data.DataError, match="401"):
        cache.get("hub", "me/private", "train", 0, "hf_someone_else")


def test_the_tokenizer_cache_is_keyed_by_the_token(monkeypatch):
    asked = []
    real = models.load_model_config

    def gated(name, token=None):
        asked.append(token)
        if token != SECRET:
            raise models.ModelError("'assets/tiny-qwen3' is gated: add a token")
        return real(name, token)

    monkeypatch.setattr(models, "load_model_config", gated)
    cache = templates.TokenizerCache()
    assert cache.get("assets/tiny-qwen3", "qwen-3", SECRET) is cache.get("assets/tiny-qwen3", "qwen-3", SECRET)
    with pytest.raises(models.ModelError, match="gated"):
        cache.get("assets/tiny-qwen3", "qwen-3", None)


def test_a_file_outside_the_uploads_is_refused_on_a_shared_server(monkeypatch, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text((REPO / "assets/sample_data/sample_chat.jsonl").read_text(encoding="utf-8")[:5000]
                       .rsplit("\n", 1)[0] + "\n", encoding="utf-8")
    cfg = RunConfig(run_name="outside")
    cfg.data.source, cfg.data.path = "file", str(outside)
    jobs.preflight(cfg, None, LOCAL)  # allowed on a machine of one's own
    monkeypatch.setenv("STUDIO_RESTRICT_PATHS", "1")
    with pytest.raises(jobs.Refused) as info:
        jobs.preflight(cfg, None, User("alice"))
    assert "only uploaded files" in info.value.params["detail"]
    # the rule holds where the file is read, also for someone else's upload
    bobs = data.store_upload(str(outside), "bob")
    with pytest.raises(data.DataError, match="only uploaded files"):
        data.load_dataset_source("file", str(bobs), allowed_roots=data.allowed_roots("alice"))
    assert len(data.load_dataset_source("file", str(bobs), allowed_roots=data.allowed_roots("bob")))


@pytest.mark.slow
def test_the_worker_applies_the_path_rule_itself(monkeypatch, tmp_path):
    """A config.yaml edited by hand cannot make the worker read a file outside the uploads."""
    outside = tmp_path / "secret.jsonl"
    outside.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    cfg = RunConfig(run_name="sneaky")
    cfg.data.source, cfg.data.path, cfg.train.max_steps = "file", str(outside), 2
    run_dir = runs.create_run(cfg, owner="alice")
    runs.launch(run_dir, env={"STUDIO_RESTRICT_PATHS": "1"})
    status = wait_for(run_dir, timeout=180)
    assert status["state"] == "failed" and "only uploaded files" in status["error"] and status["hint"] == "data"
    # the Train tab says it in the reader's language (the status keeps the code and the place)
    from studio.ui import run_view
    assert status["data_error"] == {"code": "data_uploads_only", "params": {}, "file": "secret.jsonl", "row": None,
                                    "column": None}
    assert run_view.error_text(status, KO).startswith(
        "### ❌ secret.jsonl: 이 공유 서버에서는 업로드한 파일만 쓸 수 있습니다\n데이터셋에 문제가 있습니다")


def test_a_hub_that_accepts_and_never_answers_gives_a_clear_message_within_10_s():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(16)], daemon=True).start()
    code = ("import sys, time; sys.path.insert(0, '.'); from studio import models; t0 = time.time()\n"
            "try:\n    models.load_model_config('someone/some-model')\n"
            "except models.ModelError as exc:\n    print(round(time.time() - t0, 1), exc)\n")
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(Path(os.environ["STUDIO_RUNS_DIR"]) / "hf-home")}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60).stdout.strip()
    took = time.time() - t0
    server.close()
    seconds, _, message = out.partition(" ")
    assert float(seconds) <= 10 and took < 20, out
    assert "did not answer" in message or "could not reach" in message, out


@pytest.mark.slow
def test_the_token_is_never_written():
    stop_everything()
    status = jobs.start(long_config("secret"), LOCAL, token=SECRET)
    run_dir = runs.runs_root() / status["run_id"]
    try:
        wait_for(run_dir, step=1, timeout=240)
    finally:
        stop_everything()
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_vanished_worker_is_shown_failed_without_anyone_writing_its_status():
    run_dir = runs.create_run(RunConfig(run_name="vanished"))
    (run_dir / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    runs.write_json_atomic(run_dir / "status.json", {"state": "running", "pid": 999_999_999, "step": 4})
    view = runs.view(run_dir)
    assert view["state"] == "failed" and view["resumable"] is True and view["error_code"] == "err_vanished"
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"  # untouched
    assert any(r["id"] == run_dir.name and r["resumable"] for r in runs.list_runs())


@pytest.mark.slow
def test_login_is_required_when_credentials_are_set(monkeypatch):
    from gradio_client import Client
    monkeypatch.setenv("STUDIO_USER", "reader")
    monkeypatch.setenv("STUDIO_PASSWORD", "s3cret")
    demo = launch_app()
    try:
        with pytest.raises(ValueError, match="[Ll]ogin|401|auth"):
            Client(demo.local_url, verbose=False)
        client = Client(demo.local_url, auth=("reader", "s3cret"), verbose=False)
        assert "Trainable parameters" in client.predict(api_name="/check_model")
    finally:
        demo.close()
