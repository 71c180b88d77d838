"""The named endpoints, driven by gradio_client as a notebook would (the README's example included)."""
import re

import pytest
from gradio_client import Client

from conftest import REPO, launch_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app():
    demo = launch_app()
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.local_url, verbose=False)


def test_endpoints_have_names_and_named_parameters(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in info.items()}
    assert params["/start_training"] == ["config_yaml", "hf_token"]
    assert params["/training_status"] == ["run_id"]
    assert params["/stop_training"] == ["run_id"]
    assert params["/chat"][:2] == ["run_id", "message"]
    assert not any(re.fullmatch(r"param_\d+", p) for ps in params.values() for p in ps)


def test_the_readme_example_runs(app):
    """The README's notebook example, as written there, against this server."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Drive it from a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'Client("http://127.0.0.1:7860")' in code
    scope: dict = {}
    exec(code.replace("http://127.0.0.1:7860", app.local_url), scope)  # noqa: S102 (our own README)
    assert scope["status"]["state"] == "completed", scope["status"]
    assert scope["reply"].strip()


def test_bad_config_yaml_is_refused_with_every_problem(client):
    with pytest.raises(Exception, match=r"unknown key 'train.lr'.*'train.seed' must be a whole number"):
        client.predict(config_yaml="train:\n  lr: 1\n  seed: x\n", api_name="/start_training")
    with pytest.raises(Exception, match=r"learning_rate must be a positive number.*LoRA r must be at least 1"):
        client.predict(config_yaml="train:\n  learning_rate: -1\nlora:\n  r: 0\n", api_name="/start_training")


def test_status_of_a_run_that_is_not_there(client):
    with pytest.raises(Exception, match="No such run"):
        client.predict(run_id="../../etc", api_name="/training_status")


def test_preview_dataset(client):
    info, page, raw, std = client.predict("bundled", "assets/sample_data/sample_chat.jsonl", "train", 0, 1, "",
                                          api_name="/preview_dataset")
    assert "ShareGPT" in info and page == 1 and raw[0]["row"] == 1 and 'class="role"' in std


def test_preview_dataset_bad_file_gives_a_clear_error(client):
    with pytest.raises(Exception, match="file not found"):
        client.predict("file", "nope/missing.jsonl", "train", 0, 1, "", api_name="/preview_dataset")


def test_render_template(client):
    inst, resp, stats, html = client.predict("assets/tiny-qwen3", "qwen-3", "bundled",
                                             "assets/sample_data/sample_chat.jsonl", "train", 0, 1, 512, True, "",
                                             api_name="/render_template")
    assert inst == "<|im_start|>user\n" and resp == "<|im_start|>assistant\n"
    assert "tokens trained" in stats and 'class="trained"' in html and "&lt;think&gt;" in html


def test_check_model_counts_trainable_parameters(client):
    text = client.predict(api_name="/check_model")
    assert "Trainable parameters" in text and "% trained" in text


def test_chat_with_an_unloadable_base_model_says_why(client):
    with pytest.raises(Exception, match="could not load 'no/such-model'"):
        client.predict(base_model="no/such-model", message="hi", api_name="/chat")
    with pytest.raises(Exception, match="No such run: base:no/such-model"):  # a run id is a run id, nothing else
        client.predict(run_id="base:no/such-model", message="hi", api_name="/chat")
