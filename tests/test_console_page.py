"""The operators' console in a real browser: Debian's Chromium, headless, driven by Selenium, on 127.0.0.1.

With JavaScript off every page reads and every form works (a loopback
browser is an operator with ``[auth] mode = none``): load the console,
filter jobs, open a job, read a task's log, dismiss a job, change a cap,
pause and resume. With JavaScript on, the jobs page follows a job to its end
without being reloaded. No page refers to anything outside the gateway.
Screenshots go to ``$TEST_ARTEFACTS`` (default ``test-artefacts/``). The ``browser`` (JavaScript off) and
``scripted`` (on) fixtures come from ``browser_support``.
"""

from __future__ import annotations

import re

import pytest

from wps_gateway.console.csrf import CsrfTokens
from wps_gateway.scheduling import list_limits
from wps_gateway.store.db import Store
from wps_gateway.store.models import JobStatus

from .browser_support import save
from .conftest import serve_live
from .jobs_support import attempts_of, final, job_of, submit_sleepy, wait_for, wait_turns

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path, sample_data):
    gen = serve_live(tmp_path / "var", sample_data, CONSOLE_REFRESH="1")
    served = next(gen)
    yield served
    next(gen, None)


def base(live) -> str:
    return live.url.removesuffix("/wps")


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def follow(driver, element) -> None:
    """Click a link or a form's button and wait for the next page (a click does not wait for it).

    The page being left is marked; the next one is there when the mark is gone and it has loaded. While the
    browser is between the two, asking anything may fail in several ways (a stale element, a node that "does
    not belong to the document", no script context): each is only "not yet".
    """
    from selenium.common.exceptions import WebDriverException

    driver.execute_script("window.leavingThisPage = true")
    element.click()

    def arrived() -> bool:
        try:
            return bool(driver.execute_script(
                "return !window.leavingThisPage && document.readyState === 'complete'"))
        except WebDriverException:
            return False

    wait_for(arrived, 30, "the next page")


def live_text(driver, xpath: str) -> str:
    """An element's text on a page that swaps its parts in place: found again if it was replaced meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(50):  # each try finds the element anew; a refresh a second cannot win fifty times in a row
        try:
            return driver.find_element("xpath", xpath).text
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{xpath} kept being replaced while it was read")


def assert_self_contained(driver) -> None:
    """Nothing fetched from anywhere: no external script, style, image or frame."""
    source = driver.page_source
    assert not re.search(r"<(script|img|iframe|link)[^>]+(src|href)=", source), "the page loads something"


def test_reading_and_steering_without_javascript(browser, live):
    gateway = live.gateway
    ok = submit_sleepy(gateway, [1, 2])
    failed = submit_sleepy(gateway, [3], fail_step="square")
    assert final(gateway, ok).status == JobStatus.SUCCESSFUL and final(gateway, failed).status == JobStatus.FAILED

    browser.get(f"{base(live)}/admin")
    assert browser.title == "Jobs" and "2 jobs" in text_of(browser, "summary")
    assert_self_contained(browser)
    save(browser, "console-jobs.png")

    # filter: failed jobs only, through the form
    browser.find_element("css selector", "input[name='status'][value='failed']").click()
    follow(browser, browser.find_element("css selector", "form.filters button"))
    assert "status=failed" in browser.current_url
    rows = browser.find_elements("css selector", "#jobs tbody tr")
    assert len(rows) == 1 and failed[:8] in rows[0].text and "failed" in rows[0].text
    save(browser, "console-jobs-filtered.png")

    # a job: its workflow, the failed task, its attempt's log
    follow(browser, rows[0].find_element("tag name", "a"))
    assert browser.title == f"Job {failed}"
    assert "square" in text_of(browser, "job-steps") and "failed" in text_of(browser, "job-tasks")
    summary = browser.find_element("css selector", "#job-tasks details summary")
    summary.click()
    assert "failed" in summary.text
    save(browser, "console-job.png")
    follow(browser, summary.find_element("link text", "log"))
    assert "the square step was told to fail" in browser.find_element("tag name", "main").text
    save(browser, "console-log.png")

    # retry the failed task from its page: the request is carried out and shown
    browser.get(f"{base(live)}/admin/jobs/{failed}")
    follow(browser, browser.find_element("xpath", "//button[text()='Retry the failed tasks']"))
    assert "is with the dispatcher" in browser.find_element("css selector", "p.flash").text
    # square has one retry: it failed twice; the operator's retry gives it two more runs, which fail as told
    wait_for(lambda: job_of(gateway, failed).status == JobStatus.FAILED and len(attempts_of(gateway, failed)) == 4,
             60, "the retry to run (and fail again, as told)")

    # dismiss a running job
    running = submit_sleepy(gateway, [4], seconds=30)
    wait_for(lambda: any(a.status == "running" for a in attempts_of(gateway, running)), 60, "the task to start")
    browser.get(f"{base(live)}/admin/jobs/{running}")
    follow(browser, browser.find_element("xpath", "//button[text()='Dismiss']"))
    assert "Dismissal requested" in browser.find_element("css selector", "p.flash").text
    assert final(gateway, running).status == JobStatus.DISMISSED
    browser.get(f"{base(live)}/admin/jobs/{running}")
    assert "dismissed" in text_of(browser, "job-summary")

    # change a cap on the cluster page
    browser.get(f"{base(live)}/admin/cluster")
    assert browser.title == "Cluster" and "local" in text_of(browser, "engine")
    form = browser.find_element("css selector", "form.filters")
    form.find_element("css selector", "select[name='kind'] option[value='max_cpu']").click()
    form.find_element("name", "value").send_keys("3")
    follow(browser, form.find_element("tag name", "button"))
    assert "max_cpu set to 3" in browser.find_element("css selector", "p.flash").text
    assert [(limit.kind, limit.value) for limit in list_limits(gateway.store)] == [("max_cpu", 3.0)]
    assert "3" in text_of(browser, "limits")
    save(browser, "console-cluster.png")
    follow(browser, browser.find_element("xpath", "//button[text()='Unset max_cpu']"))
    assert "as configured again" in browser.find_element("css selector", "p.flash").text
    assert list_limits(gateway.store) == []

    # pause: a new job waits; resume: it runs
    browser.find_element("name", "reason").send_keys("upgrading the agents")
    follow(browser, browser.find_element("xpath", "//button[text()='Pause dispatching']"))
    assert "paused: upgrading the agents" in text_of(browser, "dispatcher")
    save(browser, "console-paused.png")
    backend = gateway.runner.dispatcher.backend
    wait_for(lambda: backend.status()["paused"], 30, "the dispatcher to see the switch")
    held = submit_sleepy(gateway, [5])
    wait_for(lambda: job_of(gateway, held).status == JobStatus.RUNNING, 30, "the job to be planned")
    wait_turns(gateway, 20)  # what it would have launched by now, it has not
    assert attempts_of(gateway, held) == []
    follow(browser, browser.find_element("xpath", "//button[text()='Resume dispatching']"))
    assert "Dispatching resumed" in browser.find_element("css selector", "p.flash").text
    assert final(gateway, held).status == JobStatus.SUCCESSFUL


def test_forms_need_a_token_from_a_console_page(live):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{base(live)}/admin/cluster/dispatching", data=b"action=pause&reason=x",
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403 and b"not sent from the console" in refused.value.read()
    assert live.gateway.client.get("/admin/api/dispatching", extra_environ={"REMOTE_ADDR": "127.0.0.1"}).json[
        "paused"] is False


@pytest.mark.parametrize("token", ["\u00b2", "\u0661\u0662\u0663", "{now}.\u00e9", "{now}", "", None, "x.y"])
def test_a_malformed_form_token_is_simply_not_valid(tmp_path, token):
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.upgrade()
    tokens = CsrfTokens(store)
    good = tokens.issue("op")
    now = good.partition(".")[0]
    assert tokens.valid("op", good) and not tokens.valid("someone", good)
    assert tokens.valid("op", token if token is None else token.format(now=now)) is False


def test_the_jobs_page_follows_a_job_without_a_reload(scripted, live):
    gateway = live.gateway
    job_id = submit_sleepy(gateway, [6], seconds=3)
    scripted.get(f"{base(live)}/admin")
    row = f"//table[@id='jobs']//tr[contains(., '{job_id[:8]}')]"
    assert JobStatus.SUCCESSFUL not in live_text(scripted, row)
    scripted.execute_script("window.notReloaded = true")
    wait_for(lambda: JobStatus.SUCCESSFUL in live_text(scripted, row), 60,
             "the row to show the job's end")
    assert scripted.execute_script("return window.notReloaded") is True  # the same page, updated in place
    assert "updated" in text_of(scripted, "updated")
    save(scripted, "console-jobs-live.png")
