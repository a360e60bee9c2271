"""The dashboard's budgets ([7/8]): the first page interactive (the markets table's rows drawn,
measured from the navigation's start in chromium) within 2 s on loopback, and its bundle under
500 kB gzipped (GraphiQL, on its own route, excluded). Needs the build (`make web`) and
Debian's chromium."""

from __future__ import annotations

import asyncio
import gzip
import re
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import Figure, start_server

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "web" / "dist"
CHROMIUM = "/usr/bin/chromium"
BUDGET_MS = 2000.0
BUDGET_KB = 500.0


def bundle_kb() -> float:
    """Gzipped size of every file the dashboard's page loads (its scripts, preloads, styles)."""
    page = (DIST / "index.html").read_text()
    files = set(re.findall(r'(?:src|href)="/(assets/[^"]+)"', page))
    return sum(len(gzip.compress((DIST / name).read_bytes(), 9)) for name in files) / 1024


async def interactive_ms(url: str, repeat: int) -> float:
    from playwright.async_api import async_playwright

    samples = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for _ in range(repeat + 1):  # the first one warms the server's caches
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.goto(url)
            await page.locator('tr[data-symbol="BTC"]').wait_for()
            samples.append(await page.evaluate("performance.now()"))
            await context.close()
        await browser.close()
    return statistics.median(samples[1:])


async def run(*, quick: bool = False) -> list[Figure]:
    if not (DIST / "index.html").exists():
        raise RuntimeError("the dashboard is not built: run `make web` first")
    from coinql.migrations import upgrade

    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite+aiosqlite:///{Path(directory) / 'web.db'}"
        await asyncio.to_thread(upgrade, database)
        process, url = start_server(database)
        try:
            shown = await interactive_ms(url + "/", 3 if quick else 7)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return [
        Figure(
            "dashboard interactive (markets drawn)",
            shown,
            "ms",
            BUDGET_MS,
            "budget",
            target="< 2,000 ms",
        ),
        Figure(
            "dashboard bundle, gzipped (GraphiQL apart)",
            bundle_kb(),
            "kB",
            BUDGET_KB,
            "budget",
            target="< 500 kB",
        ),
    ]
