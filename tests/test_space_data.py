"""A Space that keeps its data (issue 17): the runs folder on persistent storage outside the app's folder and
/tmp (a Space's /data), end to end through the app's API: train, chat, every export, each downloaded through its
link from the run folder (never copied into Gradio's cache); a disk budget per person; a person deletes a run."""
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, launch_app, stop_everything, wait_for

from studio import disk, jobs, runs
from studio.auth import LOCAL
from studio.config import RunConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_folder():
    """A runs folder where a Space's persistent disk would be: neither under the repo nor under /tmp."""
    base = Path.home() / ".cache" / "studio-tests"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(os.path.realpath(base)) / f"data-{os.getpid()}-{time.time_ns()}"
    assert not folder.is_relative_to(REPO) and not folder.is_relative_to("/tmp")
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def space(data_folder, tmp_path_factory):
    stop_everything()
    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_RUNS_DIR", str(data_folder))
    gradio_cache = tmp_path_factory.mktemp("gradio-cache")
    mp.setenv("GRADIO_TEMP_DIR", str(gradio_cache))
    app = launch_app()
    from gradio_client import Client
    yield Client(app.local_url, verbose=False), gradio_cache
    app.close()
    stop_everything()
    mp.undo()


def download(client, answer: dict) -> dict[str, bytes]:
    """Each file through its link, by its path inside the run folder."""
    from urllib.parse import unquote, urlparse
    out = {}
    for f in answer["files"]:
        rel = unquote(urlparse(f["url"]).path).split("/", 3)[3]  # studio/download/<run>/<path in the run>
        out[rel] = urllib.request.urlopen(client.src + f["url"]).read()
    return out


def test_train_chat_and_every_export_with_the_runs_folder_on_persistent_storage(space, data_folder):
    client, gradio_cache = space
    config = client.predict(recipe="bundled", api_name="/default_config").replace("max_steps: 150", "max_steps: 12")
    run_id = client.predict(config_yaml=config, api_name="/start_training")["run_id"]
    run_dir = data_folder / run_id
    assert wait_for(run_dir, timeout=300)["state"] == "completed", runs.log_tail(run_dir)
    assert client.predict(run_id=run_id, message="What is 7 + 5?", max_new_tokens=16, api_name="/chat")
    answers = [client.predict(run_id, api_name="/export_adapter"), client.predict(run_id, api_name="/export_merged"),
               client.predict(run_id, "f16", "merged", api_name="/export_gguf"),
               client.predict(run_id, "q8_0", "adapter", api_name="/export_gguf"),
               client.predict(run_id, api_name="/export_script")]
    served = 0
    for answer in answers:
        for rel, body in download(client, answer).items():
            assert body == (run_dir / rel).read_bytes(), rel
            served += len(body)
    assert served > 1_000_000  # the merged model and its GGUFs came through the links
    cached = sum(p.stat().st_size for p in gradio_cache.rglob("*") if p.is_file())
    assert cached < 100_000, f"{cached} bytes copied into Gradio's cache"
    stale = answers[0]["files"][0]["url"].replace("sig=", "sig=0")  # a link nobody was given
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(client.src + stale)
    assert refused.value.code == 403


def test_a_person_over_their_disk_budget_is_told_before_start_and_the_oldest_exports_go_first(space, monkeypatch):
    client, _ = space
    mine = [r for r in jobs.visible_runs(LOCAL) if r["has_adapter"]]
    assert mine and any((runs.runs_root() / r["id"] / "export").is_dir() for r in mine)
    used = disk.usage(LOCAL.name)
    exports = sum(disk.size(runs.runs_root() / r["id"] / "export") for r in mine)
    cap_gb = (used - exports / 2) / disk.GIB  # room once about half the exports are gone
    monkeypatch.setenv("STUDIO_DISK_CAP_GB", f"{cap_gb:.9f}")
    assert disk.over_budget(LOCAL.name) is None  # made room: the oldest exports went
    assert disk.usage(LOCAL.name) <= cap_gb * disk.GIB
    assert all((runs.runs_root() / r["id"] / "adapter").is_dir() for r in mine)  # what the person made stays
    monkeypatch.setenv("STUDIO_DISK_CAP_GB", "0.000001")
    config = client.predict(recipe="bundled", api_name="/default_config")
    before = {p.name for p in runs.runs_root().iterdir()}
    with pytest.raises(Exception, match=r"Your runs and uploads take .* GiB of your 1e-06 GiB|delete runs"):
        client.predict(config_yaml=config, api_name="/start_training")
    assert {p.name for p in runs.runs_root().iterdir()} == before  # refused before anything was written


def test_a_person_deletes_their_own_run(space):
    client, _ = space
    cfg = RunConfig(run_name="to-delete")
    run_dir = runs.create_run(cfg)
    (run_dir / "adapter").mkdir()
    left = client.predict(run_id=run_dir.name, api_name="/delete_run")
    assert run_dir.name not in [r["id"] for r in left] and not run_dir.exists()
    with pytest.raises(Exception, match="No such run"):
        client.predict(run_id=run_dir.name, api_name="/delete_run")
