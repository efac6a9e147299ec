"""The console in headless Chromium against a running daemon on the simulated cluster:
log in, the list, an incident followed live (no reload) from firing to verified, an
approval from the page (and a viewer refused), pause and resume, and a hostile label
rendered as text. Each page is saved as a PNG under the test's tmp dir (path printed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import TOKENS, Running

XSS = "<script>alert(1)</script>"


def shot(browser: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def wait_for(browser: Any, check: Callable[[Any], Any], timeout: float = 60) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(check)


def click(browser: Any, by: str, selector: str, timeout: float = 60) -> None:
    """Click the first match, again if the live update swapped it out meanwhile."""
    def attempt(b: Any) -> bool:
        try:
            found = b.find_elements(by, selector)
            if found:
                found[0].click()
                return True
        except StaleElementReferenceException:
            pass
        return False
    wait_for(browser, attempt, timeout)


def text_of(browser: Any, selector: str) -> str:
    """The text of the first match, read again if a live update replaced it."""
    def attempt(b: Any) -> str | bool:
        try:
            return str(b.find_element(By.CSS_SELECTOR, selector).text)
        except (StaleElementReferenceException, WebDriverException) as exc:
            # a live update swapped the node out (chromedriver may say "does not belong
            # to the document" instead of stale)
            if isinstance(exc, StaleElementReferenceException) or \
                    "does not belong to the document" in str(exc):
                return False
            raise
    return str(wait_for(browser, attempt, 30))


def login(browser: Any, daemon: Running, user: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{daemon.url}/")
    assert "/login" in browser.current_url                     # sent to the login form
    browser.find_element(By.NAME, "token").send_keys(TOKENS[user])
    browser.find_element(By.CSS_SELECTOR, "form button.primary").click()
    wait_for(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".me .user").text
             .startswith(user))


def mark(browser: Any) -> None:
    """A marker a reload would wipe: the page must still carry it at the end."""
    browser.execute_script("window.__noReload = 42;")


def not_reloaded(browser: Any) -> bool:
    return bool(browser.execute_script("return window.__noReload === 42;"))


def newest_incident(browser: Any, daemon: Running, playbook: str) -> str:
    browser.get(f"{daemon.url}/?playbook={playbook}")
    link = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR,
                                                       "table.list a[href^='/incidents/']"))
    return str(link[0].get_attribute("href"))


def state_of(browser: Any) -> str:
    return text_of(browser, ".head .pill.big")


def test_login_list_and_follow_an_incident_live(daemon: Running, browser: Any,
                                                tmp_path: Path) -> None:
    login(browser, daemon, "vera")
    shot(browser, tmp_path, "list-empty")
    mark(browser)
    daemon.alert("HighErrorRate")
    # the list shows the new incident without a reload
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR,
                                                "table.list a[href^='/incidents/']"))
    assert not_reloaded(browser)
    click(browser, By.CSS_SELECTOR, "table.list a[href^='/incidents/']")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".head .pill.big"))
    mark(browser)
    seen = {state_of(browser)}
    assert seen & {"open", "remediating"}, seen
    shot(browser, tmp_path, "incident-remediating")
    deadline = time.monotonic() + 90
    while "recovered" not in seen and time.monotonic() < deadline:
        time.sleep(0.2)
        seen.add(state_of(browser))
    assert "recovered" in seen, seen
    assert not_reloaded(browser)                     # it all arrived through the stream
    restart = text_of(browser, "ol.steps li.step:nth-child(2)")
    assert "succeeded" in restart
    assert "restart" in restart
    assert "rollout" in restart.lower()
    timeline = text_of(browser, "ol.events")
    assert "opened" in timeline
    assert "recovered" in timeline
    shot(browser, tmp_path, "incident-recovered")
    browser.get(f"{daemon.url}/")
    assert "recovered" in text_of(browser, "table.list")
    shot(browser, tmp_path, "list")


def test_a_viewer_cannot_approve_and_an_operator_can(daemon: Running, browser: Any,
                                                     tmp_path: Path) -> None:
    login(browser, daemon, "vera")
    daemon.alert("NeedsApproval", pod_hash="1")
    href = newest_incident(browser, daemon, "gated-restart")
    browser.get(href)
    click(browser, By.ID, "approve")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".error-page"))
    assert "403" in text_of(browser, "h1")
    assert "may not" in text_of(browser, ".error-page")
    shot(browser, tmp_path, "viewer-refused")
    login(browser, daemon, "otto")
    browser.get(href)
    mark(browser)
    shot(browser, tmp_path, "incident-awaiting-approval")
    click(browser, By.ID, "approve")
    flash = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    assert "approved by otto (console)" in flash[0].text
    mark(browser)
    wait_for(browser, lambda b: state_of(b) == "recovered", timeout=90)
    assert not_reloaded(browser)
    assert "approved by otto (console)" in text_of(browser, "ol.events")
    shot(browser, tmp_path, "incident-approved")


def test_pause_and_resume(daemon: Running, browser: Any, tmp_path: Path) -> None:
    login(browser, daemon, "otto")
    browser.get(f"{daemon.url}/status")
    browser.find_element(By.NAME, "reason").send_keys("database migration")
    click(browser, By.ID, "pause")
    wait_for(browser, lambda b: "PAUSED" in text_of(b, ".automation"))
    assert "otto (console)" in text_of(browser, ".automation")
    assert "database migration" in text_of(browser, ".automation")
    shot(browser, tmp_path, "status-paused")
    wait_for(browser, lambda b: b.find_elements(By.ID, "resume"))
    browser.find_element(By.NAME, "reason").send_keys("migration done")
    click(browser, By.ID, "resume")
    wait_for(browser, lambda b: "running" in text_of(b, ".automation"))
    assert daemon.call(daemon.daemon.engine.guards.paused()) is None
    shot(browser, tmp_path, "status")
    browser.get(f"{daemon.url}/playbooks")
    assert "restart-api" in text_of(browser, "main")
    shot(browser, tmp_path, "playbooks")


def test_a_hostile_label_renders_as_text(daemon: Running, browser: Any,
                                         tmp_path: Path) -> None:
    login(browser, daemon, "vera")
    daemon.alert("NeedsApproval", deployment="web", note=XSS)
    href = newest_incident(browser, daemon, "gated-restart")
    browser.get(href)
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".labels"))
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()
    assert f"note={XSS}" in text_of(browser, ".labels")
    assert "deployment=web" in text_of(browser, ".labels")
    shot(browser, tmp_path, "incident-hostile-label")


def test_acknowledge_from_the_page(daemon: Running, browser: Any, tmp_path: Path) -> None:
    login(browser, daemon, "otto")
    daemon.alert("NeedsApproval", namespace="staging")          # its own target
    href = newest_incident(browser, daemon, "gated-restart")
    browser.get(href)
    wait_for(browser, lambda b: state_of(b) == "awaiting approval")
    mute = browser.find_element(By.CSS_SELECTOR, "#link-silence").get_attribute("href")
    assert mute.startswith("http://alertmanager.example:9093/#/silences/new?filter=")
    assert "namespace%3D%22staging%22" in mute
    shot(browser, tmp_path, "incident-before-ack")
    click(browser, By.ID, "ack")
    wait_for(browser, lambda b: "acknowledged by otto" in text_of(b, ".head .actions"))
    assert not browser.find_elements(By.ID, "ack")
    assert browser.find_elements(By.ID, "release")
    wait_for(browser, lambda b: "acknowledged" in text_of(b, "ol.events"))
    shot(browser, tmp_path, "incident-acknowledged")
