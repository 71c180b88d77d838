"""Shared deployments: one job at a time, tokens never written, stale runs found, optional login."""
import json
import time

import gradio as gr
import pytest

from conftest import launch_app
from studio import runs
from studio.config import RunConfig
from studio.ui import train_tab

SECRET = "hf_TESTSECRETdoNotWrite1234567890"


def form(cfg: RunConfig):
    keys = ["run_name", "model.name", "data.source", "data.path", "train.max_steps", "train.save_steps"]
    return keys, train_tab.values_from_config(cfg, keys)


def test_second_start_is_refused_and_the_token_is_never_written():
    cfg = RunConfig(run_name="first")
    cfg.train.max_steps = 500
    keys, values = form(cfg)
    state, _ = train_tab.start(keys, values, SECRET)
    first = runs.runs_root() / state["run"]
    try:
        before = sorted(p.name for p in runs.runs_root().iterdir())
        with pytest.raises(gr.Error, match="Another training run is in progress"):
            train_tab.start(keys, values, SECRET)
        assert sorted(p.name for p in runs.runs_root().iterdir()) == before  # no second folder
        assert runs.read_status(first)["state"] in runs.ACTIVE_STATES  # the first run is untouched
        deadline = time.time() + 120
        while runs.read_status(first).get("step", 0) < 1 and time.time() < deadline:
            time.sleep(0.5)
    finally:
        runs.kill(first)
        time.sleep(0.5)
        runs.reap()
    for path in first.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert runs.active_run() is None


def test_a_run_whose_worker_vanished_is_marked_at_startup():
    run_dir = runs.create_run(RunConfig(run_name="vanished"))
    (run_dir / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    runs.write_json_atomic(run_dir / "status.json", {"state": "running", "pid": 999_999_999, "step": 4})
    assert run_dir.name in runs.mark_interrupted_runs()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["resumable"] is True
    assert any(r["id"] == run_dir.name and r["resumable"] for r in runs.list_runs())


def test_login_is_required_when_credentials_are_set(monkeypatch):
    from gradio_client import Client
    monkeypatch.setenv("STUDIO_USER", "reader")
    monkeypatch.setenv("STUDIO_PASSWORD", "s3cret")
    demo = launch_app()
    try:
        with pytest.raises(Exception):
            Client(demo.local_url, verbose=False)
        client = Client(demo.local_url, auth=("reader", "s3cret"), verbose=False)
        assert "Trainable parameters" in client.predict(api_name="/check_model")
    finally:
        demo.close()
