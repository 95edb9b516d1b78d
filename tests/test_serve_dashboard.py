"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven
by selenium) against a live server of a tiny run. Skipped where either is missing; .ci/run
installs both. A screenshot is kept in build/test-artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from serve_helpers import PERSONA_LINE, live_server, prompt_len, tiny_run

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "test-artifacts"
# JavaScript's \s (the dashboard splits words on it); Python's str.split() also splits on the
# control characters \x1c-\x1f, which a tiny random model does write
JS_SPACE = re.compile("[ \f\n\r\t\v\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")


def js_words(text: str) -> int:
    return len([w for w in JS_SPACE.split(text) if w])


def _driver():
    sys.path.insert(0, str(ROOT / "bench"))
    from render_report import FLAGS, chromium  # the report test's way to find and start Chromium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in [*FLAGS, "--window-size=1300,1500"]:
        options.add_argument(flag)
    # no LD_PRELOAD: the OpenBLAS preload meant for MLX has no business inside a browser
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver"), env=env))


def test_dashboard_compares_two_models_side_by_side(tmp_path, tiny_model_dir):
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium here (apt-get install -y chromium)")
    if not shutil.which("chromedriver"):
        pytest.skip("no chromedriver here (apt-get install -y chromium-driver)")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = tiny_run(tmp_path, tiny_model_dir, report=True)
    with live_server(run, max_tokens=24) as server:
        driver = _driver()
        try:
            driver.get(server.url + "/")
            # the page re-renders its tables as data arrives: an element found just before a
            # re-render goes stale, and the wait looks again instead of failing
            wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pick input:checked")) == 2)
            picked = [b.get_attribute("value") for b in driver.find_elements(By.CSS_SELECTOR, "#pick input:checked")]
            assert picked == ["twin", "sft"]

            driver.find_element(By.ID, "message").send_keys("when do we ship?")
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".cell[data-done='1']")) == 2)

            for model in picked:
                cell = driver.find_element(By.CSS_SELECTOR, f".cell[data-model='{model}']")
                text = cell.find_element(By.CSS_SELECTOR, ".reply").get_attribute("textContent")
                assert not text.startswith("error"), text
                ttft = float(cell.find_element(By.CSS_SELECTOR, ".ttft").text)
                tps = float(cell.find_element(By.CSS_SELECTOR, ".tps").text)
                assert 0 <= ttft < 60_000 and tps > 0
                assert int(cell.find_element(By.CSS_SELECTOR, ".words").text) == js_words(text)
            # the twin was asked under the persona line, though the dashboard sent only the message
            asked = [{"role": "system", "content": PERSONA_LINE}, {"role": "user", "content": "when do we ship?"}]
            assert server.engine.last["twin"].prompt_tokens == prompt_len(run / "dpo_fused", asked)

            # the chart drew a point per model in each of its three panels, and pixels to show for it
            chart = driver.find_element(By.ID, "chart")
            assert int(chart.get_attribute("data-points")) == 2 * 3
            inked = driver.execute_script(
                "const c = document.getElementById('chart');"
                "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
            )
            assert inked > 500

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
            shutil.copy(shot, tmp_path / "dashboard.png")

            # the models tab: sizes, the loaded state and the peak memory of the two that answered
            driver.find_element(By.CSS_SELECTOR, ".tab[data-tab='models']").click()
            wait.until(
                lambda d: (
                    d.find_element(By.CSS_SELECTOR, "#model-table tr[data-model='twin'] td:nth-child(7)").text == "yes"
                )
            )
            row = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#model-table tr[data-model='twin'] td")]
            assert row[0] == "twin" and row[2].endswith(" M") and float(row[8]) > 0

            # the report tab shows the run's report
            driver.find_element(By.CSS_SELECTOR, ".tab[data-tab='report']").click()
            wait.until(lambda d: "report of sam" in (d.find_element(By.ID, "report").get_attribute("srcdoc") or ""))

            # the conversation is kept in this tab: a reload shows it again
            driver.refresh()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".cell[data-done='1']")) == 2)
            # the models' system lines come from /api/models, fetched after the cells are restored
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pick input:checked")) == 2)
            transcript = driver.execute_script("return transcript();")
        finally:
            driver.quit()
    lines = [json.loads(x) for x in transcript.splitlines()]
    assert len(lines) == 2 and all(r["messages"][0] == {"role": "system", "content": PERSONA_LINE} for r in lines)
    assert [m["role"] for m in lines[0]["messages"]] == ["system", "user", "assistant"]
