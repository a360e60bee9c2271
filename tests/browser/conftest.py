"""A real `coinql serve` on the demo feed with the dashboard's build, and Debian's chromium
driven by Playwright. Every page a test opens is watched: a console error, an uncaught
exception or a request to any host but the server fails the test. Screenshots of each page
are kept in .artifacts/browser (and in COINQL_SCREENSHOT_DIR when set: `make screenshots`
refreshes the README's)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from coinql.settings import Settings
from tests.conftest import (
    IN_CI,
    ROOT,
    Backend,
    Server,
    make_settings,
    start_server,
    stop_server,
    worker_for,
)

CHROMIUM = Path(os.environ.get("COINQL_CHROMIUM", "/usr/bin/chromium"))
BUILD = ROOT / "web" / "dist" / "index.html"
ARTIFACTS = ROOT / ".artifacts" / "browser"


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if not BUILD.exists():
        return "the dashboard is not built (make web: needs Node.js)"
    return None


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, source="demo", access_token_ttl_seconds=900)


@pytest.fixture
def web_server(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Server]:
    problem = _missing()
    if problem:
        # As with PostgreSQL and Redis: under CI=true (where .ci/run installs chromium and
        # `make test` builds the dashboard) a missing part fails the run. A developer's machine
        # without chromium or Node.js cannot run these at all; it is told what to install.
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    extra = getattr(request, "param", None) or {}
    running = start_server(
        settings,
        extra_env={
            "COINQL_ACCESS_TOKEN_TTL_SECONDS": str(settings.access_token_ttl_seconds),
            "COINQL_FEED_TICK_SECONDS": "0.5",
            **extra,
        },
    )
    try:
        with worker_for(settings):  # with Redis, jobs run on a `coinql worker`, as deployed
            yield running
    finally:
        stop_server(running)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    host: str
    name: str
    problems: list[str] = field(default_factory=list)
    shots: int = 0

    async def shot(self, label: str) -> Path:
        """A screenshot of the page as it is, kept with the test's name."""
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{label}.png"
        await self.page.screenshot(path=path, full_page=True)
        if target := os.environ.get("COINQL_SCREENSHOT_DIR"):
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / f"{label}.png")
        return path


@pytest.fixture
async def page(
    browser: Browser, web_server: Server, request: pytest.FixtureRequest
) -> AsyncIterator[Watched]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, base_url=web_server.url
    )
    opened = await context.new_page()
    host = urlsplit(web_server.url).netloc
    watched = Watched(opened, host, request.node.name.replace("/", "_"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.problems.append(f"console error: {message.text}")

    def outgoing(sent: Request) -> None:
        netloc = urlsplit(sent.url).netloc
        if sent.url.startswith(("data:", "blob:")) or netloc == host:
            return
        watched.problems.append(f"request to another host: {sent.url}")

    opened.on("console", console)
    opened.on("pageerror", lambda error: watched.problems.append(f"uncaught: {error}"))
    opened.on("request", outgoing)
    yield watched
    failed = getattr(request.node, "failed_call", False)
    if failed:
        await watched.shot("failed")
    await context.close()
    assert not watched.problems, watched.problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True  # type: ignore[attr-defined]
    return report
