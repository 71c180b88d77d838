"""A real browser (Debian chromium via playwright) goes through every tab, trains, reloads mid-run, chats;
the Korean page; and two signed-in people sharing one server. Each test makes what it needs (no order).

Screenshots land in test-artifacts/ (they are also the README's pictures).
"""
import json
import os
import shutil

import pytest
from conftest import ARTIFACTS, launch_app

from studio import auth

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PLOT_POINTS = ("(n) => { const p = document.querySelector('#loss-plot .js-plotly-plot');"
               " return p && p.data && p.data.length && p.data[0].x.length >= n; }")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def app_url():
    demo = launch_app()  # a fresh worker per run here; tests/test_standby.py drives the warm one through the API
    yield demo.local_url
    demo.close()


def wait_in_page(page, condition, timeout, arg=None):
    """page.wait_for_function, but a timeout says what the Train tab showed and where every run stood (a CI log
    is all there is of a failed browser test), with a screenshot in test-artifacts/."""
    from playwright.sync_api import TimeoutError as PageTimeout

    from studio import runs
    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout)
    except PageTimeout:
        page.screenshot(path=ARTIFACTS / "timeout.png", full_page=True)
        progress = page.locator("#train-progress").inner_text() if page.locator("#train-progress").count() else ""
        newest = [runs.runs_root() / r["id"] for r in runs.list_runs()[:4]]
        where = "\n".join(f"{d.name}: {runs.view(d)}" for d in newest)
        queue = [e["run"] for e in runs.queued()]
        raise AssertionError(f"waited {timeout / 1000:.0f} s for {condition}\nTrain tab: {progress!r}\nqueued: {queue}"
                             f"\nnewest runs:\n{where}\nnewest run's log:\n{runs.log_tail(newest[0], 30) if newest else ''}")


def open_tab(page, name):
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(300)


def fill_eval_run(page, name, steps, every):
    """The bundled recipe (the form may hold an earlier run's), 10% of the rows held out, on the Train tab."""
    page.get_by_role("button", name="Apply recipe").click()
    open_tab(page, "2 · Dataset")
    page.wait_for_function("() => document.querySelector('#eval-size input').value === '0'", timeout=10_000)
    page.locator("#eval-size input").fill("0.1")
    open_tab(page, "4 · Train")
    page.get_by_label("Run name").fill(name)
    page.get_by_label("max_steps (0 = use epochs)").fill(str(steps))
    page.get_by_label("Evaluate every N steps (0 = ten times a run)").fill(str(every))


def test_every_tab_train_reload_and_chat(app_url, browser, artifacts):
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_text("LoRA Studio").first.wait_for()

    # 1 · Model: what LoRA will train
    page.get_by_role("button", name="Check model").click()
    page.locator("#model-summary").get_by_text("Trainable parameters").wait_for(timeout=60_000)
    page.screenshot(path=artifacts / "tab-model.png", full_page=True)

    # 2 · Dataset: raw and standardized views of the first page
    open_tab(page, "2 · Dataset")
    page.locator("#dataset-info").get_by_text("ShareGPT").wait_for(timeout=30_000)
    assert page.locator("#std-rows .role").count() >= 10
    page.screenshot(path=artifacts / "tab-dataset.png", full_page=True)

    # 3 · Template: the rendered row with the trained span
    open_tab(page, "3 · Template")  # renders on arrival
    page.locator("#template-render .trained").first.wait_for(timeout=60_000)
    assert "<think>" in page.locator("#template-render").inner_text()
    page.screenshot(path=artifacts / "tab-template.png", full_page=True)

    # 4 · Train: a run of 60 steps with its own name; the phases show while it starts
    open_tab(page, "4 · Train")
    page.get_by_label("Run name").fill("browser-run")
    page.get_by_label("max_steps (0 = use epochs)").fill("60")
    page.locator("#start-btn").click()
    page.wait_for_function(PLOT_POINTS, arg=3, timeout=180_000)
    page.screenshot(path=artifacts / "tab-train-running.png", full_page=True)

    # reload mid-run: the same run, its curve, and the form as it was started
    page.reload()
    page.get_by_role("tab", name="4 · Train").click()
    page.wait_for_function(PLOT_POINTS, arg=3, timeout=60_000)
    assert page.get_by_label("Run name").input_value() == "browser-run"
    assert page.get_by_label("max_steps (0 = use epochs)").input_value() == "60"
    page.locator("#train-progress").get_by_text("completed").wait_for(timeout=300_000)
    page.locator("#train-summary").get_by_text("seconds used for training").wait_for(timeout=10_000)
    assert "Time to step 1" in page.locator("#train-summary").inner_text()
    assert page.evaluate("() => document.querySelector('#loss-plot .js-plotly-plot').data[0].x.length") == 60
    page.screenshot(path=artifacts / "tab-train.png", full_page=True)

    # 5 · Chat: the new run is there and preselected, without pressing Refresh
    open_tab(page, "5 · Chat")
    page.wait_for_function("() => document.querySelector('#chat-model input').value.includes('browser-run')",
                           timeout=20_000)
    page.locator("#chat-input textarea").fill("What is 7 + 5?")
    page.locator("#chat-send").click()
    page.locator("#chat-speed").get_by_text("tokens/s").wait_for(timeout=120_000)
    assert page.locator("#chatbot").inner_text().strip()
    page.screenshot(path=artifacts / "tab-chat.png", full_page=True)

    # Runs: listed without Refresh, fits the page, curves and what differs
    open_tab(page, "Runs")
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('browser-run')",
                           timeout=20_000)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1400
    page.locator("#runs-compare input").click()
    page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    page.wait_for_function("() => { const p = document.querySelector('#runs-plot .js-plotly-plot');"
                           " return p && p.data && p.data.length && p.data[0].x.length >= 60; }", timeout=20_000)
    page.screenshot(path=artifacts / "tab-runs.png", full_page=True)
    page.locator("#open-run").click()  # back to the Train tab, showing that run
    page.locator("#train-progress").get_by_text("completed").wait_for(timeout=20_000)
    page.close()


def test_korean_ui_checks_drops_and_trains(app_url, browser, artifacts, tmp_path):
    """In Korean: upload rows with problems, check them, see the duplicate, drop five kinds of rows for this run,
    train; the summary says how many rows the checks left out, and the run and its script left out the same rows."""
    from test_checks import crafted, script_row_rule

    from studio import checks, runs
    train, _, expected = crafted(tmp_path)
    page = browser.new_page(locale="ko-KR", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="1 · 모델").wait_for()
    open_tab(page, "2 · 데이터셋")
    page.locator("#std-rows .role").first.wait_for(timeout=30_000)
    assert page.locator("#std-rows .role").first.inner_text() in ("사용자", "시스템")  # role badges too
    page.locator("input[type=file]").first.set_input_files(str(train))
    page.locator("#dataset-info").get_by_text("crafted.jsonl").wait_for(timeout=30_000)
    page.locator("#check-data").click()
    page.locator("#check-status").get_by_text("49").wait_for(timeout=60_000)
    assert "완전 중복 · ⚠️ 1행" in page.locator("#check-duplicate").inner_text()
    page.locator("#check-show-duplicate").click()
    page.locator("#check-examples").get_by_text("1행과 같음").wait_for(timeout=10_000)
    dropped = ("unreadable", "empty", "one_sided", "duplicate", "near_duplicate")
    for code in dropped:
        page.locator(f"#check-drop-{code} input").check()
    page.screenshot(path=artifacts / "tab-dataset-checks-ko.png", full_page=True)
    open_tab(page, "4 · 훈련")
    page.get_by_role("button", name="훈련 시작").wait_for()
    page.get_by_label("실행 이름").fill("checks-ko")
    page.get_by_label("max_steps (0 = 에포크 사용)").fill("8")  # 8 x 8 rows: every one of the 49
    page.locator("#start-btn").click()
    # this run's end, not an earlier test's run that the tab showed on load (it re-attaches to the latest run)
    wait_in_page(page, "() => { const t = document.querySelector('#train-progress').innerText;"
                       " return t.includes('checks-ko') && t.includes('완료') && t.includes('스텝 8 / 8'); }",
                 timeout=300_000)
    page.locator("#train-summary").get_by_text("1 스텝까지 걸린 시간").wait_for(timeout=30_000)  # may come a poll later
    summary = page.locator("#train-summary").inner_text()
    assert "데이터 검사로 49행 중 7행을 뺐습니다: 읽을 수 없는 행 1, 빈 대화 2, 한쪽뿐인 대화 2, 완전 중복 1, " \
           "유사 중복 1." in summary, summary
    assert "시간: 시작 전 추정" in summary  # the estimate shown before Start, against the time it took
    legend = page.evaluate("() => document.querySelector('#loss-plot .js-plotly-plot').data.map(d => d.name)")
    assert "손실" in legend
    page.screenshot(path=artifacts / "tab-train-ko.png", full_page=True)
    page.reload()  # the form comes back from the run's config.yaml, data.drop ticked
    open_tab(page, "2 · 데이터셋")
    page.wait_for_function("() => document.querySelector('#check-drop-near_duplicate input').checked", timeout=20_000)
    assert [page.locator(f"#check-drop-{code} input").is_checked() for code in checks.CHECKS] == \
        [code in dropped or code == "no_trained_tokens" for code in checks.CHECKS]

    # the run's report, in Korean: what the checks found and what the run left out, beside each other
    open_tab(page, "실행 기록")
    run_id = next(r["id"] for r in runs.list_runs() if r["id"].endswith("checks-ko"))
    page.locator("#report-run input").click()
    page.get_by_role("option", name=run_id).click()
    page.locator("#report-page").get_by_text("보고서: checks-ko").wait_for(timeout=60_000)
    report = page.locator("#report-page").inner_text()
    for heading in ("데이터 검사", "교재 레시피와 다른 설정", "시간과 메모리", "평가용 행이 없어"):
        assert heading in report, heading
    assert "완전 중복\t1\t1" in report and "유사 중복\t1\t1" in report, report  # found, left out
    page.locator("#report").screenshot(path=artifacts / "runs-report-ko.png")
    page.close()

    # the run left out what the checks found, and its script leaves out the same rows
    run_dir = next(runs.runs_root() / r["id"] for r in runs.list_runs() if r["id"].endswith("checks-ko"))
    record = json.loads((run_dir / checks.DROPPED_ROWS_FILE).read_text())
    assert record == {**{code: expected[code] for code in dropped}, "no_trained_tokens": expected["no_trained_tokens"]}
    kept = [i for i in range(49) if i not in {i for rows in record.values() for i in rows}]
    assert script_row_rule(run_dir)["training_rows"](49) == kept and len(kept) == 41


def test_the_runs_tab_follows_a_run_started_while_it_was_open(app_url, browser):
    """The Runs tab opened first (nothing live, so its timer is off), then Start: the table shows the new run
    training without Refresh. (The click goes through the DOM: the Start button is on the hidden Train tab, as for
    a person whose Start was still being checked when they opened Runs.)"""
    from conftest import wait_for

    from studio import runs
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    open_tab(page, "4 · Train")
    page.get_by_label("Run name").fill("follow-me")
    page.get_by_label("max_steps (0 = use epochs)").fill("400")
    open_tab(page, "Runs")
    page.wait_for_timeout(1500)  # the tab's first answer: no live run, the timer stays off
    page.evaluate("() => document.querySelector('#start-btn').click()")
    try:
        wait_in_page(page, "() => { const t = document.querySelector('#runs-table').innerText;"
                           " return t.includes('follow-me') && t.includes('running'); }", timeout=60_000)
    finally:
        run_dir = next((runs.runs_root() / r["id"] for r in runs.list_runs() if r["id"].endswith("follow-me")), None)
        if run_dir is not None:  # a run outlives the app: end it here, not 400 steps later
            runs.request_stop(run_dir)
            wait_for(run_dir, timeout=120)
        page.close()


def test_sweep_shares_its_preparation_is_ranked_and_its_best_goes_to_chat_with_a_report(app_url, browser, artifacts):
    """A sweep of two learning rates with held-out rows: one data preparation (the second run reuses it), each run
    evaluates the base model at step 0, the Runs tab ranks them by best eval loss with their curves, 'Chat with the
    best' opens the Chat tab on it, its report compares base and adapter; the Train tab's estimate then comes from
    what these runs measured."""
    from studio import data, runs, sweep, timing
    from studio.config import RunConfig
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    fill_eval_run(page, "sw", steps=8, every=4)
    cfg = RunConfig()
    cfg.data.eval_size, cfg.train.max_steps, cfg.train.eval_steps = 0.1, 8, 4
    tokens = timing.plan(cfg, timing.sampled_lengths(cfg, data.DATASETS.get("bundled", cfg.data.path, "train", 0)),
                         600).tokens  # 8 steps x 8 rows x their mean length
    page.locator("#train-estimate").get_by_text(f"{tokens:,} tokens").wait_for(timeout=30_000)
    page.locator("#sweep").get_by_text("Sweep: one run per combination").click()
    page.locator("#sweep-values-a textarea").fill("5e-3, 2e-2")
    page.locator("#sweep-plan").get_by_text("2 runs").wait_for(timeout=10_000)
    assert "share one data preparation" in page.locator("#sweep-plan").inner_text()
    page.locator("#sweep").screenshot(path=artifacts / "train-sweep.png")
    page.locator("#sweep-start").click()
    open_tab(page, "Runs")  # at once: the Start may still be checking the runs, and the tab follows them when it ends
    page.wait_for_function("() => (document.querySelector('#sweep-ranking') || {}).innerText?.includes('(best)')"
                           " && !document.querySelector('#sweep-ranking').innerText.includes('not finished')",
                           timeout=480_000)
    ranking = page.locator("#sweep-ranking").inner_text()
    assert "Ranked by best eval loss" in ranking and "sw-lr0.005" in ranking and "sw-lr0.02" in ranking, ranking
    page.wait_for_function("() => { const p = document.querySelector('#sweep-plot .js-plotly-plot');"
                           " return p && p.data && p.data.length == 2 && p.data[0].x[0] == 0; }", timeout=20_000)
    page.locator("#sweeps").screenshot(path=artifacts / "runs-sweep-ranking.png")

    record = sweep.list_sweeps(auth.LOCAL)[0]
    ranked = sweep.ranking(record, auth.LOCAL)
    best = ranked["best"]
    assert [r["id"] for r in ranked["rows"]][0] == best
    for n, run_id in enumerate(record["runs"]):
        events = runs.read_metrics(runs.runs_root() / run_id).events
        prepared = [e for e in events if e.get("event") == "prepared" and e.get("split") == "train"]
        assert prepared[0]["reused"] is (n > 0), (run_id, prepared)  # one preparation for the sweep
        assert [e["step"] for e in events if e.get("event") == "eval"][0] == 0  # the base model, before step 1
        assert timing.read_plan(runs.runs_root() / run_id)["seconds"] > 0  # what the Train tab said before Start

    page.locator("#report-run input").click()
    page.get_by_role("option", name=best).click()
    # this run's report, not the one the page showed before the pick (every report has the same headings)
    wait_in_page(page, "(best) => { const t = document.querySelector('#report-page').innerText;"
                       " return t.includes(best) && t.includes('Eval loss: base model vs adapter'); }",
                 timeout=60_000, arg=best)
    text = page.locator("#report-page").inner_text()
    assert "base model" in text and "adapter" in text and "Data checks" in text and "Time and memory" in text
    assert "estimated" in text and "learning_rate" in text  # estimate vs actual; a setting unlike the chapter's
    page.locator("#report").screenshot(path=artifacts / "runs-report.png")

    for button, where in (("#sweep-chat-best", "#chat-model"), ("#sweep-export-best", "#export-run")):
        open_tab(page, "Runs")
        page.locator(button).click()  # that tab opens with the best run chosen (not the newest, not the followed one)
        page.wait_for_function("([where, best]) => (document.querySelector(where + ' input') || {}).value?.includes("
                               "best)", arg=[where, best], timeout=20_000)
    open_tab(page, "4 · Train")
    page.locator("#train-estimate").get_by_text("earlier run").wait_for(timeout=30_000)
    page.locator("#train-estimate").screenshot(path=artifacts / "train-estimate.png")
    page.close()


@pytest.fixture()
def shared_url(monkeypatch):
    table = {name: {"password": auth.hash_password(f"{name}-pw")} for name in ("alice", "bob")}
    monkeypatch.setenv("STUDIO_USERS", json.dumps(table))
    demo = launch_app()
    yield demo.local_url
    demo.close()


def sign_in(browser, url, name):
    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(f"{name}-pw")
    page.get_by_role("button", name="Login").click()
    page.locator("#who").get_by_text(name).wait_for(timeout=30_000)
    return page


def test_two_people_each_see_their_own_runs_and_the_second_start_queues(shared_url, browser, artifacts):
    alice, bob = sign_in(browser, shared_url, "alice"), sign_in(browser, shared_url, "bob")
    for page, name, steps in ((alice, "alice-run", "20"), (bob, "bob-run", "8")):
        open_tab(page, "4 · Train")
        page.get_by_label("Run name").fill(name)
        page.get_by_label("max_steps (0 = use epochs)").fill(steps)
        page.locator("#start-btn").click()
        try:
            page.locator("#train-progress").get_by_text(name).wait_for(timeout=60_000)
        except Exception:
            page.screenshot(path=artifacts / f"two-users-{name}-failed.png", full_page=True)
            raise
    bob.locator("#train-progress").get_by_text("ahead of you").wait_for(timeout=30_000)  # queued behind alice
    assert "alice" not in bob.locator("#train-progress").inner_text()  # nothing about whose run it is
    bob.screenshot(path=artifacts / "two-users-queued.png", full_page=True)
    for page, mine, theirs in ((alice, "alice-run", "bob-run"), (bob, "bob-run", "alice-run")):
        open_tab(page, "Runs")
        page.wait_for_function(f"() => document.querySelector('#runs-table').innerText.includes('{mine}')",
                               timeout=20_000)
        assert theirs not in page.locator("#runs-table").inner_text()
        page.locator("#runs-compare input").click()
        assert page.get_by_role("option", name=theirs).count() == 0
        page.keyboard.press("Escape")
        open_tab(page, "5 · Chat")
        page.locator("#chat-model input").click()
        assert page.get_by_role("option", name=theirs).count() == 0
        page.keyboard.press("Escape")
    # alice's run ends; bob's starts by itself and completes
    open_tab(bob, "4 · Train")
    bob.locator("#train-progress").get_by_text("completed").wait_for(timeout=600_000)
    open_tab(alice, "4 · Train")
    alice.locator("#train-progress").get_by_text("completed").wait_for(timeout=60_000)
    bob.screenshot(path=artifacts / "two-users-done.png", full_page=True)


def test_evaluate_compare_in_chat_and_export_every_format(app_url, browser, artifacts):
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    fill_eval_run(page, "eval-run", steps=20, every=5)
    page.locator("#start-btn").click()
    page.locator("#train-samples table").wait_for(timeout=240_000)  # the sample answers fill in by step
    page.locator("#train-progress").get_by_text("completed").wait_for(timeout=300_000)
    page.wait_for_function("() => document.querySelectorAll('#train-samples tbody tr').length >= 4", timeout=20_000)
    legend = page.evaluate("() => document.querySelector('#loss-plot .js-plotly-plot').data.map(d => d.name)")
    assert "eval loss" in legend
    page.locator("#train-summary").get_by_text("The adapter is the best checkpoint: step").wait_for(timeout=30_000)
    page.screenshot(path=artifacts / "tab-train-eval.png", full_page=True)

    # Chat: the base model answers the same message beside the tuned one
    open_tab(page, "5 · Chat")
    page.wait_for_function("() => document.querySelector('#chat-model input').value.includes('eval-run')",
                           timeout=20_000)
    page.locator("#chat-compare input").click()
    page.get_by_role("option", name="base model: assets/tiny-qwen3").click()
    page.locator("#chat-input textarea").fill("What is 7 + 5?")
    page.locator("#chat-send").click()
    page.locator("#chat-speed-b").get_by_text("tokens/s").wait_for(timeout=120_000)
    assert page.locator("#chatbot").inner_text().strip() and page.locator("#chatbot-b").inner_text().strip()
    page.screenshot(path=artifacts / "tab-chat-compare.png", full_page=True)

    # Export: every format of this run
    open_tab(page, "Export")
    page.wait_for_function("() => document.querySelector('#export-run input').value.includes('eval-run')",
                           timeout=20_000)
    for button, shows in (("#export-adapter", ".zip"), ("#export-merged", "chat_template"),
                          ("#export-gguf", ".gguf")):
        page.locator(button).click()
        try:
            page.wait_for_function(f"() => document.body.innerText.includes('{shows}')", timeout=240_000)
        except Exception:
            page.screenshot(path=artifacts / f"export-failed-{button[1:]}.png", full_page=True)
            raise
    assert "Modelfile" in page.locator("body").inner_text()
    page.get_by_text("Python script", exact=True).first.click()  # the accordion
    page.locator("#export-script").click()
    page.wait_for_function("() => document.body.innerText.includes('import unsloth')", timeout=60_000)
    page.screenshot(path=artifacts / "tab-export.png", full_page=True)
    page.close()


def test_several_gpus_section_and_node_commands(browser, artifacts, monkeypatch):
    """Where more than one GPU is visible, the Train tab shows the torchrun section and what each node runs,
    in the page's language. (Four GPUs are announced through CUDA_VISIBLE_DEVICES, which is all the studio
    reads to count them; nothing is started here.)"""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    demo = launch_app()
    try:
        for locale, tab, nodes_label, node_1 in (("en-US", "4 · Train", "Nodes (machines)", "Node 1:"),
                                                 ("ko-KR", "4 · 훈련", "노드 (컴퓨터 수)", "노드 1:")):
            page = browser.new_page(locale=locale, viewport={"width": 1400, "height": 1800})
            page.goto(demo.local_url)
            open_tab(page, tab)
            preview = page.locator("#dist-preview")
            preview.get_by_text("--nproc-per-node 4").first.wait_for()  # one node, every visible GPU
            nodes = page.get_by_label(nodes_label)
            nodes.fill("2")
            nodes.press("Enter")
            preview.get_by_text(node_1).wait_for()
            text = preview.inner_text()
            assert text.count("--nnodes 2") == 2 and "--node-rank 1" in text
            assert "runs/<time>-" in text  # the placeholder is shown, not swallowed as an HTML tag
            page.screenshot(path=str(artifacts / f"several-gpus-{locale}.png"), full_page=True)
            page.close()
    finally:
        demo.close()
