"""The named endpoints, driven by gradio_client as a notebook would."""
import time

import pytest
from gradio_client import Client

from conftest import launch_app
from studio import runs


@pytest.fixture(scope="module")
def client():
    demo = launch_app()
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_preview_dataset(client):
    info, page, raw, std = client.predict("bundled", "assets/sample_data/sample_chat.jsonl", "train", 0, 1, "",
                                          api_name="/preview_dataset")
    assert "sharegpt" in info and page == 1 and raw[0]["row"] == 1 and 'class="role"' in std


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


def test_start_status_stop_and_chat(client):
    client.predict(api_name="/start_training")  # the form's defaults: the bundled run
    deadline, status = time.time() + 300, ""
    while time.time() < deadline:
        status, *_ = client.predict(api_name="/training_status")  # state stays on the server
        if "`running`" in status and "step **0 /" not in status:
            break
        time.sleep(1)
    assert "`running`" in status, status
    client.predict(api_name="/stop_training")
    while time.time() < deadline:
        status, *_ = client.predict(api_name="/training_status")  # state stays on the server
        if "`stopped`" in status or "`completed`" in status:
            break
        time.sleep(1)
    assert "`stopped`" in status or "`completed`" in status, status
    run_id = runs.list_runs()[0]["id"]
    history, _ = client.predict("What is 7 + 5?", [], run_id, 24, 0.0, "qwen-3", api_name="/chat")
    assert history[-1]["role"] == "assistant" and history[-1]["content"]


def test_chat_with_an_unloadable_base_model_says_why(client):
    with pytest.raises(Exception, match="could not load 'no/such-model'"):
        client.predict("hi", [], "base:no/such-model", 8, 0.0, "qwen-3", api_name="/chat")
