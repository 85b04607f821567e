"""The rule pages in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright for
Python by its executable path; nothing is downloaded) against the service under gunicorn. Starting
from a card's `source.url`, it opens every page, follows every link to the service, checks that
each answers, that nothing logs a console error or fails to load, and that a phone-width screen
needs no sideways scrolling. Links to outside sources are checked for form, not followed (this
machine has no Internet)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from urllib.parse import urldefrag, urlparse

import pytest
import requests

from .conftest import SCENARIOS, SERVICE_FOR, load_json, start_service
from .timing import scaled

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# As root in a container Chromium needs --no-sandbox; the rest keep it off this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = os.environ.get("CDS_TEST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        message = "Chromium not installed (Debian: apt-get install chromium; or set CDS_TEST_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser")
    config = folder / "config.yaml"
    config.write_text(f"data_dir: {folder / 'data'}\n")
    proc, base = start_service("--config", str(config), cwd=folder)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(30))


def _visit(browser, url: str, viewport: dict) -> tuple[object, list[str]]:
    """Open `url` in a fresh page; the page and every console error, page error and failed load."""
    page = browser.new_page(viewport=viewport)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed to load {r.url}: {r.failure}"))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, (url, response and response.status)
    return page, problems


def test_rule_pages_from_a_card_in_a_browser(browser, service):
    body = load_json(SCENARIOS / "fq-cipro-magnesium-ordered" / "request.order-sign.json")
    cards = requests.post(f"{service}/cds-services/{SERVICE_FOR['order-sign']}", json=body, timeout=scaled(30)).json()
    start = next(c["source"]["url"] for c in cards["cards"])
    assert start.startswith(f"{service}/rules/")

    origin = urlparse(service).netloc
    to_visit, seen, outside = [start, f"{service}/rules"], set(), set()
    while to_visit:
        url = to_visit.pop()
        if url in seen:
            continue
        seen.add(url)
        for viewport in (DESKTOP, PHONE):
            page, problems = _visit(browser, url, viewport)
            assert problems == [], (url, problems)
            if viewport is PHONE:
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{url} needs sideways scrolling on a phone ({width} px)"
                page.close()
                continue
            assert page.title().endswith("Magnesium product safety")
            hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            for fragment in page.eval_on_selector_all("a[href^='#']", "links => links.map(a => a.hash)"):
                assert page.locator(fragment).count() == 1, f"{url}: {fragment} points at nothing"
            page.close()
        for href in hrefs:
            target, _ = urldefrag(href)
            parsed = urlparse(target)
            if parsed.netloc == origin:
                to_visit.append(target)
            else:
                assert parsed.scheme == "https" and parsed.netloc, f"{url}: {href!r} is neither the service nor https"
                outside.add(target)
    rules = {u for u in seen if "/rules/" in u}
    assert len(rules) >= 25, "every rule page is reached from the index"
    assert outside, "the pages link their sources"
