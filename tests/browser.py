"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Debian's ``chromium-driver``.

Nothing is downloaded at run time. Selenium is handed the chromedriver's path, so Selenium Manager (which
would fetch a driver) never runs, and it is told to stay offline should anything reach it anyway.
Both packages are installed by ``setup.sh``; the ``chromium`` fixture (tests/conftest.py) fails, and never
skips, where they are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = "chromium chromium-driver"

# the flags that start it headless as root in a container, with no GPU and without any network chatter
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium and its driver are installed."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if not absent:
        return None
    return (f"{' and '.join(absent)} missing: the browser tests need the Debian packages {PACKAGES} "
            f"(./setup.sh installs them; by hand: apt-get install {PACKAGES})")


@contextlib.contextmanager
def start_chromium() -> Iterator[Any]:
    """A Selenium driver of a fresh headless Chromium (own temporary profile), quit and cleaned up after."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    # Selenium Manager is bypassed by the explicit driver path below; should anything call it, it stays offline
    os.environ["SE_OFFLINE"] = "true"
    os.environ["SE_AVOID_STATS"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="qa-audio-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    log = profile / "chromedriver.log"
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    try:
        try:
            driver = webdriver.Chrome(service=service, options=options)
        except Exception as err:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"headless Chromium did not start: {err}\nchromedriver log tail:\n{tail}") from err
        try:
            driver.set_page_load_timeout(30)
            driver.set_script_timeout(15)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def page_url(target: str | Path) -> str:
    """``target`` as a URL the tests may open: a local file, or a page served on this machine's loopback."""
    if isinstance(target, Path):
        return target.resolve().as_uri()
    parts = urlsplit(target)
    if parts.scheme == "file" or (parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS):
        return target
    raise ValueError(f"the browser tests open only file:// and loopback http:// pages, not {target!r}")


def open_page(driver: Any, target: str | Path) -> None:
    """Load a file (Path or file:// URL) or an http://127.0.0.1 page and wait until it has loaded.

    The console log is drained first, so ``console_errors`` afterwards reports this page only.
    """
    url = page_url(target)
    driver.get_log("browser")
    driver.get(url)
    wait_for(lambda: run_js(driver, "return document.readyState") == "complete", what=f"{url} to load")


def console_log(driver: Any) -> list[dict[str, Any]]:
    """The browser console entries since the last call (Selenium drains the buffer on read)."""
    return driver.get_log("browser")


def console_errors(driver: Any) -> list[str]:
    """The console's SEVERE entries since the last read: script errors, blocked or failed loads, ..."""
    return [entry["message"] for entry in console_log(driver) if entry.get("level") == "SEVERE"]


def run_js(driver: Any, script: str, *args: Any) -> Any:
    """Run ``script`` (a function body: ``return ...`` gives the value) in the page."""
    return driver.execute_script(script, *args)


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it is truthy; its value, or AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")
        time.sleep(0.05)
