"""The time estimate (studio/timing.py): what a finished run measured, the index beside the runs, the plan for the
next run. On run folders written as the worker writes them, with times chosen so each figure is known."""
import json
import threading

import pytest

from studio import data, timing
from studio.config import RunConfig
from studio.runs import folder


def crafted_run(root, name="r1", at=1000.0, eval_after=(5,), steps=10, tokens_per_step=100, cfg=None):
    """A finished run: 7 s to start (+3 s base eval), then one step a second at 100 tokens a step, an evaluation
    that adds 4 s after each step in `eval_after`, and 1 s more after the last step (the save)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (cfg or RunConfig()).save(run_dir / "config.yaml")
    begin = at + 10.0
    events = [{"event": "dataset", "time": at + 8, "rows": 600, "used": 80, "eval_rows": 20},
              {"event": "eval", "time": begin - 0.5, "step": 0, "eval_loss": 5.0},
              {"event": "train_begin", "time": begin, "step": 0, "max_steps": steps}]
    clock = begin + 2.0  # the first step's warm-up
    for step in range(1, steps + 1):
        clock += 1.0
        events.append({"event": "log", "time": clock, "step": step, "tokens_seen": step * tokens_per_step, "loss": 1.0})
        if step in eval_after:
            events.append({"event": "eval", "time": clock + 1, "step": step, "eval_loss": 2.0})
            clock += 4.0
    end = clock + 1.0
    events.append({"event": "end", "time": end, "step": steps, "tokens_seen": steps * tokens_per_step,
                   "train_runtime": end - begin, "device": "cpu", "process_peak_gb": 1.0})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    folder.write_json_atomic(run_dir / "status.json", {
        "state": "completed", "started_at": at, "ended_at": end, "step": steps,
        "phases": [{"phase": "worker", "seconds": 5.0}, {"phase": "base_eval", "seconds": 3.0}]})
    return run_dir


@pytest.fixture()
def own_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path))
    return tmp_path


def test_a_finished_run_is_measured_so_that_its_own_time_comes_back(own_runs):
    figures = timing.measure(crafted_run(own_runs))
    assert figures["tokens_per_s"] == 100.0    # the intervals without an evaluation
    assert figures["eval_s"] == 4.0            # what the evaluation after step 5 added
    assert figures["startup_s"] == 7.0 and figures["base_eval_s"] == 3.0
    assert figures["fixed_s"] == 3.0           # the first step's warm-up and the save
    assert figures["total_s"] == 7 + 3 + 3 + 1000 / 100 + 4 == 27.0


def test_a_resumed_run_or_one_with_too_few_logs_teaches_nothing(own_runs):
    run_dir = crafted_run(own_runs, steps=2, eval_after=())
    assert timing.measure(run_dir) is None
    run_dir = crafted_run(own_runs, name="r2")
    status = folder.read_json(run_dir / "status.json")
    folder.write_json_atomic(run_dir / "status.json", {**status, "resume": True})
    assert timing.measure(run_dir) is None


def test_the_plan_for_the_next_run_scales_what_was_measured(own_runs):
    timing.remember(crafted_run(own_runs))
    cfg = RunConfig()
    cfg.train.max_steps, cfg.train.eval_steps, cfg.data.eval_size = 20, 5, 0.1
    plan = timing.plan(cfg, [50, 75, 900], 600, device=timing.device_label())  # 900: cut to max_length 512
    assert plan.source == "history" and plan.runs == 1
    assert plan.tokens == pytest.approx(20 * 8 * (50 + 75 + 512) / 3, abs=1)
    assert plan.evaluations == 4  # every 5 of 20 steps; the base model's comes on top
    one_eval = 4.0 * len(data.holdout(600, 0.1, cfg.train.seed)) / 20  # scaled to 60 eval rows from 20
    assert plan.eval_s == pytest.approx(5 * one_eval, abs=0.1)
    assert plan.seconds == pytest.approx(7 + 3 + plan.tokens / 100 + 5 * one_eval, abs=0.1)
    other = RunConfig()
    other.train.per_device_train_batch_size = 4  # another setting: no history of it
    assert timing.plan(other, [50], 600, device=timing.device_label()).source == "guess"


def test_with_no_run_of_the_key_the_guess_is_scaled_by_how_far_it_was_off_here(own_runs):
    from studio import fit
    cfg = RunConfig()
    mc = fit.model_config_for(cfg.model.name)
    device = timing.device_label()
    alone = timing.plan(cfg, [60], 600, mc, device=device, entries={})
    assert alone.source == "guess" and alone.tokens_per_s == pytest.approx(timing.guess_rate(cfg, mc, 60, device), 0.01)
    seen = {timing.key(device, "another-shape", {}): [{"at": 1, "tokens_per_s": 300.0, "guess_tokens_per_s": 100.0}]}
    calibrated = timing.plan(cfg, [60], 600, mc, device=device, entries=seen)
    assert calibrated.tokens_per_s == pytest.approx(3 * alone.tokens_per_s, 0.01)
    elsewhere = {timing.key("NVIDIA H100 80GB HBM3", "x", {}): seen[timing.key(device, "another-shape", {})]}
    assert timing.plan(cfg, [60], 600, mc, device=device, entries=elsewhere).tokens_per_s == alone.tokens_per_s


def test_concurrent_writers_keep_every_run_and_the_newest_five(own_runs):
    run_dirs = [crafted_run(own_runs, name=f"r{i}", at=1000.0 + 100 * i) for i in range(8)]
    threads = [threading.Thread(target=timing.remember, args=(d,)) for d in run_dirs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    timing.remember(run_dirs[-1])  # once per run: again changes nothing
    (entry,) = timing.read_index().values()
    assert [s["run"] for s in entry] == [f"r{i}" for i in range(3, 8)]
    assert all(s["guess_tokens_per_s"] > 0 for s in entry)


def test_durations_read_as_a_person_says_them():
    assert [timing.duration(s) for s in (0.2, 42, 150, 4000)] == ["1 s", "42 s", "2 min", "1 h 7 min"]
    assert timing.duration(150, "ko") == "2분"


def test_evaluations_between_log_events_are_found_when_logging_every_few_steps(own_runs):
    run_dir = crafted_run(own_runs)
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    kept = [e for e in events if e["event"] != "log" or e["step"] % 2 == 0]  # logging_steps 2; the eval after step 5
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
    figures = timing.measure(run_dir)
    assert figures["tokens_per_s"] == 100.0 and figures["eval_s"] == 4.0


def test_only_a_run_that_went_to_its_end_is_set_against_its_estimate():
    done = {"state": "completed", "started_at": 100.0, "ended_at": 130.0}
    assert timing.actual_seconds(done) == 30.0
    assert timing.actual_seconds({**done, "state": "stopped"}) is None  # step 13 of 40 says nothing of the plan
    assert timing.actual_seconds({**done, "resume": True}) is None
