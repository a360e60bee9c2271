"""examples/ against a real server on the demo feed, so they cannot rot: the sweep script
follows its job to the end, the paper-bot script sees its bot's events, and the notebook runs
top to bottom (nbclient) with an API key."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from coinql.settings import Settings
from tests.conftest import (
    ROOT,
    Backend,
    Server,
    make_settings,
    start_server,
    stop_server,
    worker_for,
)

EXAMPLES = ROOT / "examples"
CREATE_KEY = (
    'mutation { createApiKey(input: {name: "examples", scopes: [READ, TRADE]})'
    " { __typename ... on CreatedApiKey { key } } }"
)
REGISTER = (
    'mutation { register(email: "notebook@example.com", password: "correct horse battery'
    ' staple") { ... on AuthPayload { accessToken } } }'
)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, source="demo")


@pytest.fixture
def live(settings: Settings) -> Iterator[Server]:
    running = start_server(settings, extra_env={"COINQL_DEMO_SPEED": "60"})
    try:
        with worker_for(settings):  # with Redis, the sweep runs on a `coinql worker`
            yield running
    finally:
        stop_server(running)


@pytest.fixture
def api_key(live: Server) -> str:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        registered = http.post(
            "/graphql",
            json={"query": REGISTER},
        ).json()
        token = registered["data"]["register"]["accessToken"]
        made = http.post(
            "/graphql", json={"query": CREATE_KEY}, headers={"Authorization": f"Bearer {token}"}
        ).json()
    return str(made["data"]["createApiKey"]["key"])


def run_example(live: Server, api_key: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLES,
        env={**os.environ, "COINQL_URL": live.url, "COINQL_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_sweep_script_follows_its_job_to_the_end(live: Server, api_key: str) -> None:
    out = run_example(live, api_key, "sweep.py")
    assert "SUCCEEDED 100.0%" in out
    assert "9 combinations; best by sharpe: {" in out


def test_the_paper_bot_script_sees_its_bots_events(live: Server, api_key: str) -> None:
    out = run_example(live, api_key, "paper_bot.py", "--seconds", "6")
    assert "started: RUNNING" in out
    assert "stopped: STOPPED" in out
    assert " BotStatus " in out  # the bot's own events reached it


def test_the_notebook_runs_top_to_bottom(
    live: Server, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(EXAMPLES / "tearsheet.ipynb", as_version=4)
    monkeypatch.setenv("COINQL_URL", live.url)  # the kernel inherits them
    monkeypatch.setenv("COINQL_API_KEY", api_key)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": EXAMPLES}}
    ).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(str(output.get("data", {}).get("text/plain", "")) for output in outputs)
    assert "sharpe" in text and "BTC" in text
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the plots drew
