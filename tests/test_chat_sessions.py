"""Safe to share (issue 17): two signed-in people chat at once, each with their own run, on the app as `make run`
starts it (concurrency 4); neither can reach the other's adapter by id or by folder path."""
import json
import threading

import pytest
from conftest import launch_app, start_run, stop_everything, wait_for

from studio import auth, runs
from studio.config import RunConfig

pytestmark = pytest.mark.slow

MESSAGES = ["What is 7 + 5?", "Name a colour.", "Say hello.", "Count to three.", "What is France's tallest tower?",
            "Continue: 1, 1, 2, 3,", "Give me a fruit.", "What day comes after Monday?", "Spell cat.", "Is ice cold?"]


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """alice and bob, each with a run of their own trained differently; the app with sign-in on."""
    stop_everything()
    mp = pytest.MonkeyPatch()
    table = {name: {"password": auth.hash_password(f"{name}-pw", iterations=1000)} for name in ("alice", "bob")}
    mp.setenv("STUDIO_USERS", json.dumps(table))
    made = {}
    for owner, lr, seed in (("alice", 5e-3, 1), ("bob", 2e-2, 2)):
        cfg = RunConfig(run_name=f"{owner}-run")
        cfg.train.max_steps, cfg.train.learning_rate, cfg.train.seed = 30, lr, seed
        run_dir = start_run(cfg, owner=owner)
        assert wait_for(run_dir, timeout=300)["state"] == "completed", runs.log_tail(run_dir)
        made[owner] = run_dir
    app = launch_app()
    yield app, made
    app.close()
    mp.undo()


def client(app, name):
    from gradio_client import Client
    return Client(app.local_url, auth=(name, f"{name}-pw"), verbose=False)


def ask(c, run_id, message):
    return c.predict(run_id=run_id, message=message, max_new_tokens=24, temperature=0.0, api_name="/chat")


def test_two_people_chat_at_once_and_each_gets_their_own_adapters_tokens(two_people):
    app, made = two_people
    alice, bob = client(app, "alice"), client(app, "bob")
    alone = {"alice": [ask(alice, made["alice"].name, m) for m in MESSAGES],
             "bob": [ask(bob, made["bob"].name, m) for m in MESSAGES]}
    assert alone["alice"] != alone["bob"]  # two adapters that answer differently: a mix-up would show
    together, errors = {"alice": [], "bob": []}, []

    def chat(name, c, run_dir):
        try:
            together[name] = [ask(c, run_dir.name, m) for m in MESSAGES]
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(n, c, made[n])) for n, c in (("alice", alice), ("bob", bob))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert together == alone  # greedy: exactly the tokens each adapter gives alone


def test_nobody_reaches_another_persons_adapter_by_any_name(two_people, tmp_path):
    app, made = two_people
    bob = client(app, "bob")
    a = made["alice"]
    with pytest.raises(Exception, match="No such run") as by_id:
        ask(bob, a.name, "hi")
    assert a.name in str(by_id.value)
    missing = runs.runs_root() / "20990101-000000-nothing-here"
    said = {}
    for label, path in (("relative", f"runs/{a.name}/adapter"), ("absolute", str(a / "adapter")),
                        ("run folder", str(a)), ("missing", str(missing / "adapter")),
                        ("outside", str(tmp_path))):
        with pytest.raises(Exception) as info:
            bob.predict(base_model=path, message="hi", api_name="/chat")
        said[label] = str(info.value).replace(path, "<path>")
    assert len(set(said.values())) == 1, said  # one answer: a folder that exists is not told from one that does not
    assert "not a preset, a Hub id" in said["absolute"]
    for path in (str(a / "adapter"), str(missing)):  # Check model: the same rule, the same words
        with pytest.raises(Exception, match="not a preset, a Hub id"):
            bob.predict(path, 8, 8, 0.0, ["q_proj"], "none", False, "", api_name="/check_model")
