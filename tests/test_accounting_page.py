"""The accounting page in a real browser: Debian's Chromium, headless, driven by Selenium, JavaScript off
(the ``browser`` fixture of ``browser_support``).

It must render its three charts from the server alone (inline SVG, nothing
fetched), and its filter form must work without a script. Screenshots are
kept as test artefacts (``$TEST_ARTEFACTS``, default ``test-artefacts/``).
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from selenium.webdriver.support.ui import WebDriverWait

from .accounting_support import A, J, add_jobs
from .browser_support import ARTEFACTS, save
from .conftest import serve_live
from .test_accounting import at

CHARTS = ("chart-usage-over-time", "chart-top-users", "chart-top-processes")


@pytest.fixture
def served(tmp_path, sample_data):
    """A gateway on 127.0.0.1 (no dispatcher) whose store holds a year of made-up usage."""
    live = next(iter(gen := serve_live(tmp_path / "var", sample_data, dispatcher=False)))
    jobs = []
    for n in range(36):
        user, process = f"user-{n % 7}", f"proc-{'abc'[n % 3]}"
        attempts = [A(0, "failed", wall=600 + 60 * n), A(0, "succeeded", cpus=1 + n % 4, wall=1200 + 300 * n,
                                                         cpu_used=900 + 200 * n)] if n % 5 == 0 else \
            [A(0, "succeeded", cpus=1 + n % 4, wall=1200 + 300 * n, cpu_used=900 + 200 * n)]
        jobs.append(J(user, at("2026-01-03T09:00:00") + timedelta(days=10 * n), "g", process, attempts=attempts))
    add_jobs(live.gateway.store, jobs)
    yield live.url.removesuffix("/wps")
    next(gen, None)


def ink(png: bytes) -> float:
    """The share of pixels that are not white."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(png) as memory, memory.open() as image:
            pixels = image.read()[:3].astype(np.int32)
    return float((pixels.sum(axis=0) < 3 * 240).mean())


def test_the_page_shows_its_charts_without_javascript(browser, served):
    browser.get(f"{served}/accounting?f=html&group_by=user")
    save(browser, "accounting-page.png")
    assert browser.title == "Accounting"
    assert "<script" not in browser.page_source
    for ident in CHARTS:
        chart = browser.find_element("id", ident)
        assert chart.is_displayed() and chart.size["width"] >= 700 and chart.size["height"] >= 100, ident
        png = chart.screenshot_as_png
        (ARTEFACTS / f"{ident}.png").write_bytes(png)
        assert ink(png) > 0.03, f"{ident} looks blank"
    bars = browser.find_elements("css selector", "#chart-usage-over-time rect[fill='#2f6db5']")
    assert len(bars) == 13  # a bar per month of the year, and the legend's swatch
    users = browser.find_element("id", "chart-top-users").text
    assert "user-0" in users and "user-6" in users


def test_the_filter_form_works_without_a_script(browser, served):
    browser.get(f"{served}/accounting?f=html")
    browser.find_element("name", "user").send_keys("user-3")
    browser.find_element("name", "from").send_keys("2026-03")
    browser.find_element("css selector", "input[name='group_by'][value='process']").click()
    browser.find_element("css selector", "form.filters button").click()
    WebDriverWait(browser, 60).until(lambda b: "user=user-3" in b.current_url  # the new page, however slow
                                     and b.execute_script("return document.readyState") == "complete")
    assert "group_by=process" in browser.current_url
    save(browser, "accounting-page-filtered.png")
    words = browser.find_element("id", "chart-top-users").text.split()
    assert {w.rstrip(":") for w in words if w.startswith("user-")} == {"user-3"}
    assert "By process" in browser.page_source
    assert ink(browser.find_element("id", "chart-top-processes").screenshot_as_png) > 0.01
