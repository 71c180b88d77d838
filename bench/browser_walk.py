"""The studio walked as a new user would, in a real browser, against `python app.py` as `make run` starts it.

    .venv/bin/python bench/browser_walk.py local    # Start at page open and at a run's end, three queued + Stop,
                                                    # reload mid-run, every tab after the runs, Chat, Export, Korean
    .venv/bin/python bench/browser_walk.py shared   # two signed-in people: bob tries alice's run by id, folder path
                                                    # and dataset path
    .venv/bin/python bench/browser_walk.py big      # 100,000 FineTome-shaped rows: upload, check, Start, Stop

Needs Debian's chromium and Python playwright (requirements-test.txt). Prints what each step showed and, at the
end, every run it started with its final state and the cause the UI gives; screenshots go to --out. Not a test:
what it prints is for a person to read (the tests in tests/test_browser.py assert the same paths).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # our `studio`, not the unsloth wheel's
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def say(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


class App:
    """`python app.py` with its own runs folder and port."""

    def __init__(self, runs_dir: Path, port: int, log: Path, env: dict | None = None):
        shutil.rmtree(runs_dir, ignore_errors=True)
        self.url = f"http://127.0.0.1:{port}/"
        full = {**os.environ, "GRADIO_SERVER_PORT": str(port), "STUDIO_RUNS_DIR": str(runs_dir),
                "HF_HUB_OFFLINE": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=full, stdout=open(log, "w"),
                                     stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                urllib.request.urlopen(self.url, timeout=1)
                return
            except urllib.error.HTTPError:
                return  # it answers (a sign-in page)
            except Exception:
                time.sleep(0.2)
        raise SystemExit("the app did not come up")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(500)


def first_line(page, selector: str = "#train-progress") -> str:
    return page.locator(selector).inner_text().splitlines()[0]


def wait_text(page, selector: str, text: str, timeout: float = 300) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if text in page.locator(selector).inner_text():
            return time.time() - t0
        page.wait_for_timeout(300)
    raise AssertionError(f"{selector} never showed {text!r}: {page.locator(selector).inner_text()[:400]}")


def run_id_shown(page) -> str:
    return first_line(page).split("·")[0].strip().split()[-1].strip("*")


def last_toast(page) -> str:
    toasts = page.locator(".toast-body").all_inner_texts()
    return toasts[-1].replace("\n", " ")[-220:] if toasts else "(none)"


def local_walk(browser, app: App, runs_dir: Path, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.time()
    page.goto(app.url)
    tab(page, "4 · Train")
    page.get_by_label("max_steps (0 = use epochs)").fill("12")
    page.locator("#start-btn").click()  # the moment the page answers
    say("Start clicked", round(time.time() - t0, 1), "s after the page was asked for")
    say("run 1 completed", round(wait_text(page, "#train-progress", "completed", 240), 1), "s later:", first_line(page))
    page.screenshot(path=shots / "local-1-first-run.png", full_page=True)
    first = run_id_shown(page)
    page.locator("#start-btn").click()  # the moment that run ends
    t1 = time.time()
    while run_id_shown(page) == first and time.time() - t1 < 30:  # the tab follows the new run
        page.wait_for_timeout(200)
    wait_text(page, "#train-progress", "completed", 240)
    say("run 2 completed", round(time.time() - t1, 1), "s after its Start:", first_line(page))
    page.get_by_label("max_steps (0 = use epochs)").fill("40")
    before = {p.name for p in runs_dir.iterdir() if p.is_dir()}
    for _ in range(3):  # three Starts in a row: one trains, two wait
        page.locator("#start-btn").click()
        page.wait_for_timeout(1200)
    ids = sorted({p.name for p in runs_dir.iterdir() if (p / "config.yaml").is_file()} - before)
    say("three started:", ids, "| the tab shows:", first_line(page))
    tab(page, "Runs")
    page.wait_for_timeout(1500)
    page.locator("#runs-compare input").click()
    page.locator("#runs-compare input").fill(ids[0])
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.locator("#open-run").click()
    page.wait_for_timeout(1500)
    page.locator("#stop-btn").click()  # stop the first
    page.wait_for_timeout(2500)
    say("after Stop of the first:", first_line(page))
    page.reload()  # mid-run
    page.wait_for_timeout(3000)
    tab(page, "4 · Train")
    say("after a reload:", first_line(page))
    os.environ["STUDIO_RUNS_DIR"] = str(runs_dir)
    from studio import runs
    deadline = time.time() + 400  # the three have ended, as the UI sees them (a run stopped in its worker's
    while time.time() < deadline and not all(runs.view(runs_dir / i).get("state") in runs.FINAL_STATES for i in ids):
        time.sleep(2)             # imports has no status.json of its own)
    for name in ("5 · Chat", "Runs", "Export", "1 · Model", "2 · Dataset", "3 · Template", "4 · Train"):
        tab(page, name)  # right after the runs ended, no Refresh
        page.wait_for_timeout(1200)
        page.screenshot(path=shots / f"local-tab-{name.split()[-1].lower()}.png", full_page=True)
    tab(page, "Runs")
    say("Runs table, first rows:", " | ".join(page.locator("#runs-table").inner_text().splitlines()[1:5])[:300])
    page.locator("#report-run input").click()
    page.locator("#report-run input").fill(ids[1])
    page.keyboard.press("Enter")
    page.wait_for_timeout(4000)
    say("report:", page.locator("#report-page").inner_text()[:300].replace("\n", " | "))
    tab(page, "5 · Chat")
    say("Chat offers first:", page.locator("#chat-model input").input_value())
    page.locator("#chat-input textarea").fill("What is 7 + 5?")
    page.locator("#chat-send").click()
    wait_text(page, "#chat-speed", "tokens/s", 120)
    say("chat:", page.locator("#chat-speed").inner_text(), "|", page.locator("#chat-loaded").inner_text())
    page.locator("#chat-unload").click()
    page.wait_for_timeout(1500)
    say("after Unload:", page.locator("#chat-loaded").inner_text())
    tab(page, "Export")
    page.locator("#export-adapter").click()
    wait_text(page, "#export-adapter-files", "MB", 120)
    say("export link:", page.locator("#export-adapter-files a").first.get_attribute("href")[:90])
    page.close()
    ko = browser.new_page(locale="ko-KR", viewport={"width": 1400, "height": 1000})
    ko.goto(app.url)
    ko.wait_for_timeout(3000)
    tab(ko, "4 · 훈련")
    ko.wait_for_timeout(2000)
    say("Korean Train tab:", first_line(ko))
    ko.screenshot(path=shots / "local-train-ko.png", full_page=True)
    ko.close()


def shared_walk(browser, app: App, runs_dir: Path, shots: Path, tmp: Path) -> None:
    pages = {}
    for name in ("alice", "bob"):
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(app.url)
        page.get_by_label("username").fill(name)
        page.get_by_label("password").fill(f"{name}-pw")
        page.get_by_role("button", name="Login").click()
        page.locator("#who").get_by_text(name).wait_for(timeout=30_000)
        pages[name] = page
    alice, bob = pages["alice"], pages["bob"]
    tab(alice, "2 · Dataset")
    rows = tmp / "alice.jsonl"
    rows.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                       {"role": "assistant", "content": f"a{i}"}]})
                              for i in range(40)) + "\n")
    alice.locator("input[type=file]").first.set_input_files(str(rows))
    alice.locator("#dataset-info").get_by_text("alice.jsonl").wait_for(timeout=30_000)
    upload = next(runs_dir.glob("uploads/alice/*alice.jsonl"))
    tab(alice, "4 · Train")
    alice.get_by_label("max_steps (0 = use epochs)").fill("20")
    alice.locator("#start-btn").click()
    wait_text(alice, "#train-progress", "completed", 240)
    run_id = run_id_shown(alice)
    say("alice's run:", run_id)
    tab(bob, "Export")  # by run id
    bob.locator("#export-run input").fill(run_id)
    bob.keyboard.press("Enter")
    bob.locator("#export-adapter").click()
    bob.wait_for_timeout(2500)
    say("bob exports alice's run by id ->", last_toast(bob))
    tab(bob, "1 · Model")  # by folder path, against a folder that does not exist
    for path in (runs_dir / run_id / "adapter", runs_dir / "no-such-run" / "adapter"):
        bob.get_by_label("Model (Hub id or local folder)").fill(str(path))
        bob.get_by_role("button", name="Check model").click()
        bob.wait_for_timeout(2500)
        say("bob checks a model by folder", str(path).replace(str(runs_dir), "<runs>"), "->", last_toast(bob))
    tab(bob, "2 · Dataset")  # by dataset path, against a file that does not exist
    bob.get_by_text("Upload a file").click()
    for path in (upload, upload.parent / "nothing-here.jsonl"):
        bob.get_by_label("Hub dataset id").fill(str(path))
        bob.get_by_role("button", name="Load & preview").click()
        bob.locator(".toast-body").get_by_text(path.name).last.wait_for(timeout=20_000)  # the answer names the file
        say("bob reads a file by path", str(path).replace(str(runs_dir), "<runs>"), "->",
            bob.locator(".toast-body").get_by_text(path.name).last.inner_text().replace("\n", " ")[:160])
    tab(bob, "Runs")
    bob.wait_for_timeout(1500)
    bob.locator("#report-run input").click()
    say("bob's report list:", bob.get_by_role("option").all_inner_texts())
    bob.keyboard.press("Escape")
    say("bob's runs table:", bob.locator("#runs-table").inner_text()[:200].replace("\n", " | "))
    bob.screenshot(path=shots / "shared-bob-runs.png", full_page=True)


def big_walk(browser, app: App, shots: Path, tmp: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from cpu_big_data import make_file
    big = tmp / "big100k.jsonl"
    if not big.exists():
        make_file(big, 100_000)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    tab(page, "2 · Dataset")
    page.get_by_text("Upload a file").click()
    t0 = time.time()
    page.locator("input[type=file]").first.set_input_files(str(big))
    page.locator("#dataset-info").get_by_text("100,000 rows").wait_for(timeout=180_000)
    say(f"upload + preview of {big.stat().st_size / 1e6:.0f} MB:", round(time.time() - t0, 1), "s:",
        page.locator("#dataset-info").inner_text()[:120])
    t0 = time.time()
    page.locator("#check-data").click()
    page.locator("#check-status").get_by_text("Checked").wait_for(timeout=120_000)
    say("check data:", round(time.time() - t0, 1), "s:", page.locator("#check-status").inner_text()[:200])
    tab(page, "4 · Train")
    page.get_by_label("max_steps (0 = use epochs)").fill("20")
    page.wait_for_timeout(3000)
    say("estimate:", page.locator("#train-estimate").inner_text()[:200])
    t0 = time.time()
    page.locator("#start-btn").click()
    page.locator("#train-progress").get_by_text("running").wait_for(timeout=240_000)
    say("running", round(time.time() - t0, 1), "s after Start:", first_line(page))
    page.locator("#stop-btn").click()
    page.locator("#train-progress").get_by_text("stopped").wait_for(timeout=60_000)
    say("after Stop:", first_line(page))
    page.screenshot(path=shots / "big-train.png", full_page=True)


def every_run(runs_dir: Path) -> None:
    """Each run's final state and the cause the UI gives."""
    os.environ["STUDIO_RUNS_DIR"] = str(runs_dir)
    from studio import runs
    from studio.ui import run_view
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and (p / "config.yaml").exists()):
        status = runs.view(run_dir)
        cause = run_view.error_text(status) if status.get("state") == "failed" else \
            (f"stopped in {status['stopped_in']}" if status.get("stopped_in") else "")
        say(f"  {run_dir.name}: {status.get('state')} at step {status.get('step', 0)}", cause)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["local", "shared", "big"])
    parser.add_argument("--out", default="/tmp/studio-walk", help="runs folders, logs and screenshots")
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args()
    out = Path(args.out)
    shots = out / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    runs_dir = out / f"runs-{args.phase}"
    env = {}
    if args.phase == "shared":
        from studio import auth
        env["STUDIO_USERS"] = json.dumps({n: {"password": auth.hash_password(f"{n}-pw", iterations=1000)}
                                          for n in ("alice", "bob")})
    from playwright.sync_api import sync_playwright
    app = App(runs_dir, args.port, out / f"app-{args.phase}.log", env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            if args.phase == "local":
                local_walk(browser, app, runs_dir, shots)
            elif args.phase == "shared":
                shared_walk(browser, app, runs_dir, shots, out)
            else:
                big_walk(browser, app, shots, out)
            browser.close()
    finally:
        app.close()
    time.sleep(3)
    say("every run started, as it ended:")
    every_run(runs_dir)
    left = subprocess.run(["pgrep", "-af", "studio.train"], capture_output=True, text=True).stdout
    ours = [line for line in left.splitlines()
            if str(runs_dir) in line or ("--standby" in line and sys.executable in line)]
    say("studio processes of this app after it exited:", ours)
    return 0


if __name__ == "__main__":
    sys.exit(main())
