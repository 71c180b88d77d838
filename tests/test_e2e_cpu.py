"""End to end on CPU: the real worker trains the bundled model, the chat reloads the adapter.

Also the faults a long run meets: Stop + Resume, an exception in the worker, a SIGKILL.
"""
import json
import os
import signal
import time

import pytest
from conftest import start_run, wait_for

from studio import runs
from studio.chat import RunTarget, answer, base_target, load_model
from studio.config import RunConfig

pytestmark = pytest.mark.slow


def losses(run_dir):
    tail = runs.MetricsTail(run_dir / "metrics.jsonl")
    tail.read_new()
    return tail


@pytest.fixture(scope="module")
def default_run():
    """The default run from the UI's defaults: bundled model + sample data."""
    t0 = time.time()
    run_dir = start_run(RunConfig())
    status = wait_for(run_dir, timeout=600)
    return run_dir, status, time.time() - t0


def test_default_run_learns_and_saves_an_adapter(default_run):
    run_dir, status, wall = default_run
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    tail = losses(run_dir)
    logs = tail.logs
    assert len(logs) == RunConfig().train.max_steps
    first, last = sum(e["loss"] for e in logs[:5]) / 5, sum(e["loss"] for e in logs[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert list((run_dir / "adapter").glob("adapter_model.safetensors"))
    kinds = {e["event"] for e in tail.events}
    assert {"model", "dataset", "train_begin", "log", "end"} <= kinds
    model_event = next(e for e in tail.events if e["event"] == "model")
    assert 0 < model_event["trainable"] < model_event["total"]
    assert runs.machine_holder() is None and not runs.worker_alive(run_dir)
    phases = [p["phase"] for p in status["phases"]]
    assert phases[:1] == ["worker"] and {"model_load", "data", "prepare", "trainer", "first_step"} <= set(phases)
    end = next(e for e in tail.events if e["event"] == "end")
    assert RunConfig().lora.use_gradient_checkpointing == "false" and end["gradient_checkpointing"] is False
    print(f"default run: {wall:.1f}s from start to saved adapter; loss {first:.3f} -> {last:.3f}")


def test_chat_reloads_the_adapter_and_answers_in_chat_format(default_run):
    run_dir, _, _ = default_run
    messages = [{"role": "user", "content": "What is 7 + 5?"}]
    pieces = list(answer(load_model(RunTarget(run_dir)), messages, max_new_tokens=40))
    assert len(pieces) > 1  # streamed, not one block
    reply = pieces[-1]
    assert "12" in reply, reply
    # The base model never saw the chat format: it does not answer the same way.
    base_reply = list(answer(load_model(base_target("assets/tiny-qwen3")), messages, max_new_tokens=40))[-1]
    assert base_reply != reply


def short_config(name, steps=12, save_steps=0):
    cfg = RunConfig(run_name=name)
    cfg.train.max_steps, cfg.train.save_steps = steps, save_steps
    cfg.data.max_rows = 120
    return cfg


def test_stop_saves_a_checkpoint_and_resume_continues_the_curve(default_run):
    run_dir = start_run(short_config("stop-resume", steps=40))
    wait_for(run_dir, step=5, timeout=240)
    runs.request_stop(run_dir)
    status = wait_for(run_dir, timeout=120)
    assert status["state"] == "stopped", runs.log_tail(run_dir)
    stopped_at = status["step"]
    assert 5 <= stopped_at < 40 and runs.last_checkpoint(run_dir) is not None
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert any(r["id"] == run_dir.name and r["resumable"] for r in runs.list_runs())

    runs.launch(run_dir, resume=True)
    status = wait_for(run_dir, timeout=240)
    assert status["state"] == "completed" and status["step"] == 40, runs.log_tail(run_dir)
    steps = [e["step"] for e in losses(run_dir).logs]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 40  # one curve, appended
    assert len(steps) == len(set(steps))


@pytest.mark.parametrize("kind,hint,text", [("", "crash", "fault injected at step 3"),
                                             ("oom", "oom", "CUDA out of memory")])
def test_a_failing_worker_marks_the_run_failed_and_the_ui_says_why(default_run, monkeypatch, kind, hint, text):
    monkeypatch.setenv("STUDIO_FAULT_AT_STEP", "3")
    monkeypatch.setenv("STUDIO_FAULT_KIND", kind)
    run_dir = start_run(short_config(f"fault-{kind or 'raise'}"))
    status = wait_for(run_dir, timeout=240)
    assert status["state"] == "failed" and status["hint"] == hint
    assert text in status["error"] and "Traceback" in status["traceback"]
    assert runs.machine_holder() is None  # the machine is free again
    # What the Train tab shows for it: the error, the plain hint, the traceback's last lines.
    from studio.ui import train_tab
    state, _, _ = train_tab.attach(run_dir.name)
    _, progress, _, _, _, error, timer, _ = train_tab.poll(state)
    assert "`failed`" in progress and text in error and "Traceback" in error
    assert ("lower the batch size" in error) == (hint == "oom")
    assert timer.active is False


def test_a_killed_worker_is_detected_and_the_lock_released(default_run):
    run_dir = start_run(short_config("killed", steps=200))
    wait_for(run_dir, step=2, timeout=240)
    os.killpg(json.loads((run_dir / "status.json").read_text())["pid"], signal.SIGKILL)
    deadline = time.time() + 10
    while not (run_dir / "exit.json").exists() and time.time() < deadline:
        time.sleep(0.05)  # the launcher's watch records how it ended
    status = runs.view(run_dir)
    assert status["state"] == "failed" and status["error_code"] == "err_killed_oom"
    assert status["error_params"] == {"signal": "SIGKILL"} and status["hint"] == "oom"
    from conftest import KO
    from studio.ui import run_view
    assert "강제 종료되었습니다 (SIGKILL)" in run_view.error_text(status, KO)
    assert runs.machine_holder() is None and not runs.worker_alive(run_dir)  # the OS released both locks
    saved = json.loads((run_dir / "status.json").read_text())
    assert saved["state"] == "running"  # nobody but the worker writes status.json: the failure is derived


def test_no_phase_sits_silent_from_start_to_step_1(default_run):
    """From Start to step 1 the status always names a phase, and is rewritten at least every 2 s."""
    run_dir = start_run(short_config("phases", steps=3))
    seen, deadline = [], time.time() + 240
    while time.time() < deadline:
        status = runs.view(run_dir)
        seen.append((time.time(), status.get("state"), status.get("phase"), status.get("updated_at")))
        if status.get("step", 0) >= 1 or status.get("state") in runs.FINAL_STATES:
            break
        time.sleep(0.2)
    wait_for(run_dir, timeout=240)
    starting = [s for s in seen if s[1] == "starting"]
    assert starting and all(s[2] for s in starting), seen  # a phase is always named
    stamps = sorted({s[3] for s in seen if s[3]})
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert stamps and max(gaps or [0]) <= 2.0, gaps


def test_an_eval_split_gives_eval_loss_sample_answers_and_the_best_checkpoint(default_run):
    """The base model is evaluated (and answers the prompts) once, at step 0, before the first step: a Resume
    does not do it again."""
    cfg = short_config("eval", steps=10)
    cfg.data.max_rows, cfg.data.eval_size, cfg.train.eval_steps = 200, 0.1, 5
    cfg.train.early_stopping_patience = 3
    run_dir = start_run(cfg)
    wait_for(run_dir, step=6, timeout=300)
    runs.request_stop(run_dir)
    assert wait_for(run_dir, timeout=120)["state"] == "stopped", runs.log_tail(run_dir, 40)
    runs.launch(run_dir, resume=True)
    status = wait_for(run_dir, timeout=300)
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    events = runs.read_metrics(run_dir).events
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 5, 10] and all(e["eval_loss"] > 0 for e in evals)
    assert evals[0]["eval_loss"] > evals[-1]["eval_loss"]  # the base model is worse on the held-out rows
    samples = [e for e in events if e["event"] == "samples"]
    assert [e["step"] for e in samples] == [0, 5, 10]
    assert len(samples[0]["prompts"]) == 4 and len(samples[0]["answers"]) == 4  # the chapter's 2 + 2 held out
    assert (run_dir / "samples.jsonl").read_text().count("\n") == 3
    assert [p["phase"] for p in runs.read_json(run_dir / "status.json")["phases"]].count("base_eval") == 0  # resumed
    end = next(e for e in reversed(events) if e["event"] == "end")
    assert end["best_step"] in (5, 10) and end["best_eval_loss"] == min(e["eval_loss"] for e in evals[1:])
    dataset = next(e for e in events if e["event"] == "dataset")
    assert dataset["eval_rows"] == 20 and dataset["used"] == 80  # 10 steps x 8 of the 180 left for training
