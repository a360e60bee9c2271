"""The dashboard and GraphiQL, served from the build of `web/` (`npm run build` into web/dist):
`/` is the dashboard, `/assets/...` its hashed files, `GET /graphql` from a browser is GraphiQL
from the same build (nothing is fetched from a CDN), and `/graphiql/operations.json` the
contract's operations it opens as tabs. Without a build the API still serves, and `/` says how
to build the dashboard."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import structlog
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from coinql.settings import Settings

log = structlog.get_logger(__name__)

CHECKOUT = Path(__file__).resolve().parents[2]  # src/coinql/web.py -> the repository
VARIABLES = re.compile(r"^#\s*Variables:\s*(\{.*\})\s*$", re.MULTILINE)
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>coinql</title></head>
<body style="font-family: system-ui; max-width: 40rem; margin: 3rem auto">
<h1>coinql</h1><p>The API is at <code>POST /graphql</code>. The {what} is not built:
install Node.js 20 or later and run <code>make run</code> (or <code>cd web &amp;&amp; npm ci
&amp;&amp; npm run build</code>).</p></body></html>"""


@dataclass(frozen=True)
class WebBuild:
    """Where the build is, if it is there."""

    directory: Path

    @classmethod
    def of(cls, settings: Settings) -> WebBuild:
        return cls(settings.web_dir or CHECKOUT / "web" / "dist")

    @property
    def built(self) -> bool:
        return (self.directory / "index.html").is_file()

    def page(self, name: str, what: str) -> Response:
        path = self.directory / name
        if path.is_file():
            return FileResponse(path, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(NOT_BUILT.format(what=what))  # the API itself is up


def contract_tabs(directory: Path | None) -> list[dict[str, str]]:
    """One GraphiQL tab per contract file: its operations, and the variables its header names."""
    if directory is None or not directory.is_dir():
        return []
    tabs = []
    for path in sorted(directory.glob("*.graphql")):
        text = path.read_text()
        tab = {"query": text}
        found = VARIABLES.search(text)
        if found:
            try:
                tab["variables"] = json.dumps(json.loads(found.group(1)), indent=2)
            except json.JSONDecodeError:
                pass  # a header that is not JSON: the tab opens without variables
        tabs.append(tab)
    return tabs


def default_contract_dir() -> Path | None:
    shared = CHECKOUT.parent / "shared" / "contract"
    return shared if shared.is_dir() else None


def dashboard_routes(settings: Settings) -> list[BaseRoute]:
    """The dashboard's routes; they go after the API's, so they never shadow it."""
    build = WebBuild.of(settings)
    if not build.built:
        log.warning(
            "the dashboard is not built; the API serves without it",
            web_dir=str(build.directory),
            fix="install Node.js 20+ and run `make run` (or `npm ci && npm run build` in web/)",
        )
    tabs = contract_tabs(settings.contract_dir or default_contract_dir())

    async def index(request: Request) -> Response:
        return build.page("index.html", "dashboard")

    async def operations(request: Request) -> Response:
        return JSONResponse(tabs)

    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/graphiql/operations.json", operations),
    ]
    # Mounted even before a build exists: a build made while the server runs is served.
    assets = ImmutableFiles(directory=build.directory / "assets", check_dir=False)
    routes.append(Mount("/assets", app=assets, name="assets"))
    return routes


class ImmutableFiles(StaticFiles):
    """Hashed build files: cached for a year, since a new build has new names."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response
