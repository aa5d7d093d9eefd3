"""Notebook 07 in a real browser, in both editions: ``handson lab`` (JupyterLab on the
sandbox) driven by Debian's Chromium, headless. Run All Cells, then what a learner sees: the
rollout bar at its end (2 of 2), the live views stopped with their button, no error in any
output, JupyterLab's own menus in the edition's language. Screenshots land in
runs/screenshots/.

Needs ``make browser`` (Debian's chromium, chromium-driver and a Japanese font).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from handson import chapters, course, i18n, waiting
from handson.connection import connect
from handson.progress import service_text

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = course.ROOT / "runs" / "screenshots"
HANDSON = str(Path(sys.executable).parent / "handson")
RUN_ALL = "runmenu:run-all"
MENU = {"en": ("File", "Run"), "ja": ("ファイル", "実行")}  # JupyterLab's own words
FINISHED = re.compile(r"\[\d+\]:")  # a code cell's prompt once it has run ([*]: while it runs)
RUN_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"No {CHROMIUM} or {CHROMEDRIVER}: run `make browser` to install them.")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_script_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, ready: Callable[[], Any], timeout: float) -> None:
    """Poll ``ready()`` until it answers something true, for at most ``timeout`` seconds."""
    if not waiting.until(lambda: bool(ready()), timeout=timeout, first=0.5, longest=2.0):
        raise AssertionError(f"{what}: not after {timeout:.0f} s")


def start_lab(tmp_path: Path, student: str, lang: str) -> tuple[subprocess.Popen[str], str]:
    """``handson lab`` as a learner starts it, on a folder holding notebook 07 of ``lang``
    with the student's parameters injected as papermill injects them; its URL."""
    root = tmp_path / "lab"
    root.mkdir()
    source = course.notebook_path("07", lang)
    notebook = parameterize_notebook(
        load_notebook_node(str(source)), {"student": student, "lang": lang}
    )
    nbformat.write(notebook, root / source.name)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "HOME": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    lab = subprocess.Popen(
        [
            HANDSON,
            "lab",
            "--student",
            student,
            "--lang",
            lang,
            "--",
            "--no-browser",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "lab.log").open("w"),
        text=True,
    )
    log = tmp_path / "lab.log"
    wait_until("JupyterLab started", lambda: "is running at" in log.read_text(), 120)
    return lab, f"http://127.0.0.1:{port}/lab/tree/{source.name}?token={token}"


def texts(browser: Any, selector: str) -> list[str]:
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)"
    return list(browser.execute_script(script, selector))


def click(browser: Any, selector: str, text: str | None = None) -> None:
    """Click the element of ``selector`` (whose text is ``text``, if given)."""
    from selenium.webdriver.common.by import By

    for element in browser.find_elements(By.CSS_SELECTOR, selector):
        if text is None or element.text.strip() == text:
            element.click()
            return
    raise AssertionError(f"nothing to click: {selector} {text or ''}; {texts(browser, selector)}")


def shoot(browser: Any, lang: str, name: str, selector: str | None = None) -> None:
    """A screenshot of the page, or of the cell (code and output) that holds the last element
    of ``selector``, scrolled into view."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"07-{lang}-{name}.png"
    if selector is None:
        browser.save_screenshot(str(path))
        return
    cell = browser.execute_script(
        "const all = document.querySelectorAll(arguments[0]);"
        "const cell = all[all.length - 1].closest('.jp-Cell');"
        "cell.scrollIntoView({block: 'center'}); return cell",
        selector,
    )
    time.sleep(0.5)
    cell.screenshot(str(path))


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_notebook_07_runs_all_cells_in_jupyterlab(
    lang: str, driver: Any, sandbox_server: Any, lab_overrides: Path, tmp_path: Path
) -> None:
    student = f"browser-{lang}"
    # What notebook 00 leaves: chapters 1-6 built for the student.
    chapters.build_prerequisites(connect("sandbox", student=student))
    lab, url = start_lab(tmp_path, student, lang)
    try:
        driver.get(url)
        wait_until(
            "the kernel is idle",
            lambda: texts(driver, ".jp-Notebook-ExecutionIndicator[data-status='idle']"),
            120,
        )
        file_menu, run_menu = MENU[lang]
        assert file_menu in texts(driver, ".lm-MenuBar-itemLabel")
        click(driver, ".lm-MenuBar-item", run_menu)
        click(driver, f"li.lm-Menu-item[data-command='{RUN_ALL}']")

        prompts = ".jp-CodeCell .jp-InputArea-prompt"
        total = len(texts(driver, prompts))
        wait_until(
            f"all {total} code cells have run",
            lambda: (
                all(FINISHED.fullmatch(p.strip()) for p in texts(driver, prompts))
                and texts(driver, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
            ),
            RUN_TIMEOUT,
        )
        shoot(driver, lang, "end")

        # The second rollout's bar at its end, and its line of text under it.
        i18n.use(lang)  # the library's words as the kernel speaks them
        try:
            done = service_text(
                {
                    "desiredCount": 2,
                    "pendingCount": 0,
                    "deployments": [{"runningCount": 2, "rolloutState": "COMPLETED"}],
                }
            )
            stop = i18n._("Stop")
        finally:
            i18n.use(i18n.language())
        assert done in texts(driver, ".widget-label"), texts(driver, ".widget-label")
        bars = driver.execute_script(
            "return [...document.querySelectorAll('.widget-hprogress .progress-bar')]"
            ".map(e => e.style.width)"
        )
        assert bars[-1] == "100%", bars
        assert any(done in t for t in texts(driver, ".jp-OutputArea-output pre"))
        shoot(driver, lang, "rollout", ".widget-hprogress")

        # The live views (the service watch, the log follow): stopped with their button.
        buttons = texts(driver, "button.widget-button")
        assert buttons.count(stop) == 2, buttons
        for _ in range(2):
            click(driver, "button.widget-button:not([disabled])", stop)
        wait_until(
            "both live views ended",
            lambda: (
                len(driver.find_elements("css selector", "button.widget-button[disabled]")) == 2
            ),
            30,
        )
        shoot(driver, lang, "watch", "button.widget-button")

        errors = texts(driver, ".jp-OutputArea-output[data-mime-type*='stderr']")
        assert not errors, errors
        assert not texts(driver, ".jp-OutputArea-output[data-mime-type*='error']")
    finally:
        lab.terminate()
        lab.wait(timeout=30)
