"""Headless Chromium for the report tests: Debian's browser, offline, one per test module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_found() -> bool:
    """Whether the Chromium the browser tests drive is installed."""
    return Path(CHROMIUM).is_file()


def launch() -> Iterator[Browser]:
    """A browser for the length of a fixture."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_report(browser: Browser, path: Path) -> Page:
    """report.html opened and ready; `page.problems` lists script errors and any network request."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "request",
        lambda request: problems.append(f"network: {request.url}") if not request.url.startswith("file:") else None,
    )
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    page.problems = problems  # type: ignore[attr-defined]
    return page
