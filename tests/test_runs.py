import json

from studio import runs


def test_metrics_tail_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = runs.MetricsTail(path)
    assert tail.read_new() == []  # no file yet
    with open(path, "w") as f:
        f.write(json.dumps({"event": "log", "step": 1, "loss": 2.0}) + "\n" + '{"event": "log", "st')
    assert [e["step"] for e in tail.read_new()] == [1]
    offset = tail.offset
    with open(path, "a") as f:
        f.write('ep": 2, "loss": 1.5}\n')
    new = tail.read_new()
    assert [e["step"] for e in new] == [2] and tail.offset > offset
    assert tail.read_new() == [] and [e["loss"] for e in tail.logs] == [2.0, 1.5]


def test_run_names_cannot_escape_the_runs_folder():
    for evil in ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "~root", "\x00x", ""]:
        name = runs.sanitize_name(evil)
        assert "/" not in name and not name.startswith(".") and ".." not in name and name
        run_dir = runs.new_run_dir(evil)
        assert run_dir.resolve().parent == runs.runs_root().resolve()


def test_resolve_run_refuses_paths_outside():
    import pytest
    for evil in ["../x", "/etc", "..", "../../etc/passwd"]:
        with pytest.raises(ValueError):
            runs.resolve_run(evil)


def test_the_first_step_on_a_gpu_says_it_compiles():
    from conftest import EN, KO
    from studio.ui import run_view
    status = {"state": "starting", "phase": "first_step", "phase_elapsed_s": 7.0, "progress": {"detail": "compiles"}}
    assert "compiling the model's kernels" in run_view.phase_text(status, EN)
    assert "컴파일" in run_view.phase_text(status, KO)
    assert "compil" not in run_view.phase_text({**status, "progress": {}}, EN)


def test_a_kill_finds_the_worker_by_its_lock_never_the_app(tmp_path):
    """runs.kill, before a worker has written its pid, ends whoever holds the run's lock: only a worker. The app holds
    the lock too while it hands the run over (the soak's kill once ended the app that way)."""
    import subprocess
    import sys
    import time
    from studio.runs import launcher
    lock = tmp_path / "lock"
    lock.touch()
    hold = f"f = open({str(lock)!r}); import time; time.sleep(30)"
    app = subprocess.Popen([sys.executable, "-c", hold, "app.py"])
    worker = subprocess.Popen([sys.executable, "-c", hold, "-m", "studio.train", "--standby", "3"])
    try:
        deadline = time.time() + 10
        while time.time() < deadline and launcher.lock_holders(lock) != [worker.pid]:
            time.sleep(0.1)
        assert launcher.lock_holders(lock) == [worker.pid]
    finally:
        app.kill()
        worker.kill()
        app.wait()
        worker.wait()
