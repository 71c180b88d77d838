"""One owner of the GPU (studio/gpu.py): training, chat and exports take their share through one protocol; what
does not fit beside a live run waits, said in words, and never takes the run down. On this CPU machine the card's
size is declared (STUDIO_GPU_GB, as a deployment may to keep part of a card free); the leases, locks and queue
are the real ones."""
import os

import pytest
from conftest import KO, stop_everything

from studio import gpu, runs
from studio.config import RunConfig
from studio.runs import folder


@pytest.fixture()
def card(monkeypatch, machine_free):
    monkeypatch.setenv("STUDIO_GPU_GB", "4")  # 3 GiB usable beside the 1 GiB margin
    yield
    for path in gpu.leases_dir().glob("*.json"):
        path.unlink(missing_ok=True)


def test_leases_add_up_and_one_that_does_not_fit_is_refused_in_words(card):
    first = gpu.take("chat", 1.5, "run-a")
    second = gpu.take("export", 1.0, "run-b")
    assert sorted(lease["kind"] for lease in gpu.live_leases()) == ["chat", "export"]
    with pytest.raises(gpu.GpuBusy) as info:
        gpu.take("chat", 1.0, "run-c")
    assert info.value.need_gb == 1.0 and 0.4 < info.value.free_gb < 0.6
    first.release()
    gpu.take("chat", 1.0, "run-c").release()  # room again
    second.release()
    assert gpu.live_leases() == []


def test_a_lease_dies_with_its_holder(card):
    import subprocess
    import sys
    code = ("import sys, time; sys.path.insert(0, '.'); from studio import gpu; "
            "gpu.take('chat', 2.5, 'elsewhere'); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd(), stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(gpu.GpuBusy):
        gpu.take("chat", 1.0)
    proc.kill()
    proc.wait()
    gpu.take("chat", 1.0).release()  # the OS released its lock: the lease is gone


def test_beside_a_training_run_only_what_fits_its_plan(card):
    run_dir = runs.create_run(RunConfig(run_name="holds-the-card"))
    locks = folder.take_locks(run_dir, planned_gb=2.0)
    try:
        assert gpu.training_gb() == 2.0
        gpu.take("chat", 0.5, "small").release()  # 2.0 + 0.5 fits in 3
        with pytest.raises(gpu.GpuBusy) as info:
            gpu.take("chat", 1.5, "too big")
        assert info.value.training == run_dir.name
        import gradio as gr
        from studio.ui import chat_tab
        from studio.chat import BaseTarget
        said = chat_tab.load_failed(info.value, BaseTarget("assets/tiny-qwen3"), KO)
        assert isinstance(said, gr.Error) and "GPU가 훈련 중입니다" in said.message and "지금 CPU에서" in said.message
    finally:
        for fd in locks:
            os.close(fd)


def test_a_queued_run_waits_for_memory_a_chat_holds_and_starts_when_it_lets_go(card):
    chat = gpu.take("chat", 2.9, "someone's chat")
    cfg = RunConfig(run_name="needs-the-card")
    cfg.train.max_steps = 2
    run_dir = runs.create_run(cfg)
    runs.enqueue(run_dir)
    assert runs.dispatch() is None  # the machine is free, its memory is not
    status = runs.view(run_dir)
    assert status["state"] == "queued" and status["waiting_for"] == "gpu_memory" and status["needs_gb"] > 0
    from studio.ui import run_view
    assert "대화 모델을 내리세요" in run_view.progress_line(status, [], run_dir.name, KO)
    released = []

    def let_go():  # an idle chat lets go when a run waits
        chat.release()
        released.append(True)
    gpu.on_pressure(let_go)
    try:
        assert runs.dispatch() == run_dir.name
        assert released and runs.view(run_dir)["state"] in ("starting", "running")
    finally:
        gpu._pressure.remove(let_go)
        stop_everything()


def test_a_chat_that_does_not_fit_waits_in_view_and_answers_when_the_run_lets_go(card, monkeypatch):
    """The Chat tab: beside a training run whose plan leaves no room, the reply says why and waits; when the run
    ends, the same message is answered. (The model's own lease is declared here: on this CPU the tiny model
    would load without one.)"""
    import threading
    from studio import chat
    from studio.ui import chat_tab
    monkeypatch.setattr(chat_tab, "GPU_WAIT_S", 0.2)
    for session in list(chat.SERVICE.sessions):  # no model already loaded by an earlier test: this one loads it
        chat.SERVICE.unload(session)
    real = chat.load_model

    def leased_load(target):  # what load_model does on a GPU: a lease of the model's size first
        lease = gpu.take("chat", 1.5, target.label)
        loaded = real(target)
        loaded.lease = lease
        return loaded
    monkeypatch.setattr(chat, "load_model", leased_load)
    run_dir = runs.create_run(RunConfig(run_name="trains-now"))
    locks = folder.take_locks(run_dir, planned_gb=2.0)  # 2 + 1.5 > 3: the chat must wait
    released = threading.Lock()  # the locks are closed once, by whoever comes first

    def run_ends():
        if released.acquire(blocking=False):
            for fd in locks:
                os.close(fd)
    ends = threading.Timer(0.5, run_ends)
    try:
        replies = chat_tab.respond("What is 7 + 5?", [], chat_tab.BASE, 8, 0.0, "qwen-3",
                                   base_name="assets/tiny-qwen3", request=KO)
        first = next(replies)[0][-1]["content"]
        assert first.startswith("⏳") and "GPU가 훈련 중입니다" in first
        ends.start()  # the run ends
        last = list(replies)[-1][0][-1]["content"]
        assert not last.startswith("⏳") and last.strip()
    finally:  # a failure here must not leave the machine 'busy' for every later test
        ends.cancel()
        run_ends()
        chat.SERVICE.unload(chat_tab.session_of(chat_tab.auth.user_from_request(KO), KO))


def test_every_question_about_the_card_is_one_nvidia_smi_call_for_the_first_visible_gpu(tmp_path, monkeypatch):
    """gpu.nvidia_smi is how the web process asks (never a CUDA context): the Model tab's device line, the card's
    size, its free memory and the estimate's GPU name all read it. A fake nvidia-smi records what it was asked."""
    from studio import fit, models, timing
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/asked"\n'
                    'case "$1" in *name,memory.total*) echo "NVIDIA H100 80GB HBM3, 81559, 80000, 9.0";;\n'
                    '*memory.total*) echo 81559;; *memory.free*) echo 80000;; *name*) echo "NVIDIA H100 80GB HBM3";; esac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    monkeypatch.delenv("STUDIO_GPU_GB", raising=False)
    timing.gpu_name.cache_clear()
    assert models.device_info() == models.DeviceInfo("cuda", "NVIDIA H100 80GB HBM3", 81559 / 1024, 80000 / 1024, True)
    assert gpu._query_total_gb() == 81559 / 1024 and round(fit.free_gpu_gb(), 1) == 78.1
    assert timing.device_label() == "NVIDIA H100 80GB HBM3"
    assert all(line.split()[-2:] == ["-i", "3"] for line in (tmp_path / "asked").read_text().splitlines())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for this process: nothing is asked
    timing.gpu_name.cache_clear()
    assert gpu.nvidia_smi("name") is None and timing.device_label().startswith("CPU")
    timing.gpu_name.cache_clear()
