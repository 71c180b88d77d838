"""The preference stage in a real browser (Debian chromium): choose DPO on the Train tab, see the pairs side by side
(Dataset), prompt + chosen and prompt + rejected with their trained tokens (Template), apply the DPO recipe, start
from an SFT run's adapter and watch the preference curves (Train). Screenshots in test-artifacts/."""
import re

import pytest
from conftest import start_run, wait_for
from test_browser import app_url, browser, open_tab  # noqa: F401  (the browser tests' fixtures and helper)

from studio import runs
from studio.config import RunConfig

pytestmark = pytest.mark.slow

PREFERENCE_PLOT = ("(n) => { const p = document.querySelector('#loss-plot .js-plotly-plot');"
                   " return p && p.data && p.data.some(t => t.name === 'reward margin' && t.x.length >= n); }")


def test_dpo_from_an_sft_run_in_the_browser(app_url, browser, artifacts):  # noqa: F811
    sft = RunConfig(run_name="browser-sft")
    sft.train.max_steps = 10
    sft_dir = start_run(sft)
    assert wait_for(sft_dir, timeout=600)["state"] == "completed", runs.log_tail(sft_dir, 40)

    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    open_tab(page, "4 · Train")
    assert not page.locator("#beta").is_visible()  # SFT: no preference fields
    page.get_by_text("DPO (preference)").click()
    page.locator("#beta").wait_for(state="visible", timeout=10_000)

    # 2 · Dataset: the bundled pairs came with the stage; chosen and rejected side by side
    open_tab(page, "2 · Dataset")
    page.get_by_role("button", name="Load & preview").click()
    page.locator("#dataset-info").get_by_text("preference pairs (chosen/rejected conversations)").wait_for(
        timeout=30_000)
    assert page.locator("#std-rows .side.chosen").count() == page.locator("#std-rows .side.rejected").count() == 5
    page.screenshot(path=artifacts / "tab-dataset-pairs.png", full_page=True)

    # 3 · Template: prompt + chosen and prompt + rejected, the answers' tokens marked as trained
    open_tab(page, "3 · Template")
    page.locator("#template-render .side.rejected .trained").first.wait_for(timeout=60_000)
    assert "DPO trains on the answers" in page.locator("#template-stats").inner_text()
    chosen = page.locator("#template-render .side.chosen .trained").first.inner_text()
    rejected = page.locator("#template-render .side.rejected .trained").first.inner_text()
    assert "7 + 5 = 12." in chosen and "7 + 5 = 14." in rejected
    page.screenshot(path=artifacts / "tab-template-pairs.png", full_page=True)

    # 1 · Model: the DPO recipe (its learning rate and steps for the tiny model)
    open_tab(page, "1 · Model")
    page.get_by_text("Bundled tiny model + sample pairs, DPO (CPU, offline)").click()
    page.get_by_role("button", name="Apply recipe").click()
    page.wait_for_timeout(1000)

    # 4 · Train: start from the SFT run's adapter; the curves of the preference loss and rewards
    open_tab(page, "4 · Train")
    assert page.get_by_label("learning_rate").input_value() == "0.002" and page.locator("#beta").is_visible()
    page.locator("#adapter-from input").click()
    page.get_by_role("option", name=re.compile(sft_dir.name)).click()
    page.get_by_label("Run name").fill("browser-dpo")
    page.get_by_label("max_steps (0 = use epochs)").fill("24")
    page.locator("#start-btn").click()
    page.wait_for_function(PREFERENCE_PLOT, arg=4, timeout=300_000)
    page.locator("#train-progress").get_by_text("completed").wait_for(timeout=300_000)
    page.wait_for_function(PREFERENCE_PLOT, arg=24, timeout=30_000)
    summary = page.locator("#train-summary").inner_text()
    assert f"DPO, beta 0.1, on 192 pairs, from {sft_dir.name}" in summary and "reward accuracy" in summary
    names = page.evaluate("() => document.querySelector('#loss-plot .js-plotly-plot').data.map(t => t.name)")
    assert {"loss", "chosen reward", "rejected reward", "reward margin", "reward accuracy"} <= set(names)
    page.screenshot(path=artifacts / "tab-train-dpo.png", full_page=True)
    page.close()
    dpo = next(r for r in runs.list_runs() if r["name"] == "browser-dpo")
    assert dpo["stage"] == "dpo" and dpo["state"] == "completed"
