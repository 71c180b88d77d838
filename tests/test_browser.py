"""A real browser (Debian chromium via playwright) goes through every tab, trains, and chats.

Screenshots land in test-artifacts/ (they are also the README's pictures).
"""
import shutil
import time

import pytest
from conftest import launch_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def app_url():
    demo = launch_app()
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_tab(page, name):
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(300)


def test_every_tab_train_and_chat(app_url, browser, artifacts):
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_text("LoRA Studio").first.wait_for()

    # 1 · Model: what LoRA will train
    page.get_by_role("button", name="Check model").click()
    page.locator("#model-summary").get_by_text("Trainable parameters").wait_for(timeout=60_000)
    page.screenshot(path=artifacts / "tab-model.png", full_page=True)

    # 2 · Dataset: raw and standardized views of the first page
    open_tab(page, "2 · Dataset")
    page.locator("#dataset-info").get_by_text("sharegpt").wait_for(timeout=30_000)
    assert page.locator("#std-rows .role").count() >= 10
    page.screenshot(path=artifacts / "tab-dataset.png", full_page=True)

    # 3 · Template: the rendered row with the trained span
    open_tab(page, "3 · Template")  # renders on arrival
    page.locator("#template-render .trained").first.wait_for(timeout=60_000)
    assert "<think>" in page.locator("#template-render").inner_text()
    page.screenshot(path=artifacts / "tab-template.png", full_page=True)

    # 4 · Train: start, watch the plot fill, wait for the end
    open_tab(page, "4 · Train")
    page.locator("#start-btn").click()
    page.wait_for_function(
        "() => { const p = document.querySelector('#loss-plot .js-plotly-plot');"
        " return p && p.data && p.data[0].x.length >= 3; }", timeout=180_000)
    page.screenshot(path=artifacts / "tab-train-running.png", full_page=True)
    page.locator("#train-progress").get_by_text("completed").wait_for(timeout=300_000)
    page.locator("#train-summary").get_by_text("seconds used for training").wait_for(timeout=10_000)
    points = page.evaluate("() => document.querySelector('#loss-plot .js-plotly-plot').data[0].x.length")
    assert points >= 50
    page.screenshot(path=artifacts / "tab-train.png", full_page=True)

    # 5 · Chat: the new adapter answers
    open_tab(page, "5 · Chat")
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_timeout(1000)
    page.locator("#chat-input textarea").fill("What is 7 + 5?")
    page.locator("#chat-send").click()
    page.locator("#chatbot .bot, #chatbot [data-testid='bot']").first.wait_for(timeout=120_000)
    deadline = time.time() + 60
    while time.time() < deadline and "12" not in page.locator("#chatbot").inner_text():
        page.wait_for_timeout(500)
    assert "12" in page.locator("#chatbot").inner_text()
    page.screenshot(path=artifacts / "tab-chat.png", full_page=True)

    # Runs: the finished run is listed
    open_tab(page, "Runs")
    page.get_by_role("button", name="Refresh").last.click()
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('completed')",
                           timeout=10_000)
    page.locator("#runs-compare input").click()
    page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    page.wait_for_function("() => { const p = document.querySelector('#runs-plot .js-plotly-plot');"
                           " return p && p.data && p.data[0].x.length >= 50; }", timeout=20_000)
    page.screenshot(path=artifacts / "tab-runs.png", full_page=True)
    page.locator("#open-run").click()  # back to the Train tab, showing that run
    page.locator("#train-progress").get_by_text("completed").wait_for(timeout=20_000)
    page.close()


def test_korean_ui(app_url, browser, artifacts):
    page = browser.new_page(locale="ko-KR", viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="1 · 모델").wait_for()
    page.get_by_role("tab", name="4 · 훈련").click()
    page.get_by_role("button", name="훈련 시작").wait_for()
    # re-attached to the last run: its whole curve is back after a fresh page load
    page.wait_for_function("() => { const p = document.querySelector('#loss-plot .js-plotly-plot');"
                           " return p && p.data && p.data[0].x.length >= 50; }", timeout=30_000)
    assert "스텝" in page.locator("#train-progress").inner_text()  # server-made text follows the language too
    page.screenshot(path=artifacts / "tab-train-ko.png", full_page=True)
    page.close()
