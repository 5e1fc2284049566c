"""Debian's Chromium, headless, driven by Selenium: nothing downloaded, no network but loopback; screenshots
kept as test artefacts (``$TEST_ARTEFACTS``, default ``test-artefacts/``).

A plugin of the test suite (``conftest.pytest_plugins``): ``browser`` has JavaScript off, ``scripted`` on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import REPO, require

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTEFACTS = Path(os.environ.get("TEST_ARTEFACTS", REPO / "test-artefacts"))


def start_chromium(profile: Path, javascript: bool = False):
    """A headless Chromium with a fresh profile; JavaScript off unless asked for."""
    require(Path(CHROMIUM).exists() and Path(DRIVER).exists(),
            "Chromium and its driver not found (Debian packages chromium, chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,2400",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    return driver


def save(driver, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTEFACTS / name))


@pytest.fixture
def browser(tmp_path):
    yield from _chromium(tmp_path, javascript=False)


@pytest.fixture
def scripted(tmp_path):
    yield from _chromium(tmp_path, javascript=True)


def _chromium(tmp_path: Path, javascript: bool):
    """The fixtures' Chromium, quit after the test."""
    driver = start_chromium(tmp_path / "chromium-profile", javascript)
    yield driver
    driver.quit()
