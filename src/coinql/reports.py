"""Self-contained HTML tear sheets, like quantstats' `html()` report: `GET /reports/asset/BTC`,
`/reports/portfolio/<id>` and `/reports/backtest/<id>`. Each runs one GraphQL query through
the schema with the request's own credentials (a Bearer token or an API key, as on
`/graphql`), so a report shows exactly what its caller may read; its charts are inline SVG
and it loads nothing else."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from coinql.view import CONTEXT, CoinqlGraphQL, error_response

PERFORMANCE = """
fragment Sheet on Performance {
  label periodsPerYear riskFreeRate observations start end
  totalReturn cagr volatility sharpe sortino calmar omega maxDrawdown maxDrawdownDuration
  skew kurtosis tailRatio bestPeriod worstPeriod winRate ulcerIndex
  valueAtRisk(level: 0.95) expectedShortfall(level: 0.95)
  drawdowns(top: 5) { peak trough recovery depth durationPeriods }
  calendar { year months total }
  equity { timestamps values }
  drawdownSeries { timestamps values }
  undefined { metric reason }
}
"""
QUERIES = {
    "asset": PERFORMANCE
    + """query ($id: String!) {
      subject: asset(symbol: $id) { name: symbol dataSource performance(interval: D1) { ...Sheet } }
    }""",
    "portfolio": PERFORMANCE
    + """query ($id: ID!) {
      subject: portfolio(id: $id) {
        name baseCurrency performance(interval: D1) { ...Sheet }
        positions { symbol quantity marketValue unrealizedPnl weight }
      }
    }""",
    "backtest": PERFORMANCE
    + """query ($id: ID!) {
      subject: backtestRun(id: $id) {
        name codeVersion performance { ...Sheet }
        trades(first: 500) { symbol entryTime exitTime entryPrice exitPrice quantity pnl returnPct }
      }
    }""",
}
PERCENT = {"totalReturn", "cagr", "volatility", "maxDrawdown", "bestPeriod", "worstPeriod"}
PERCENT |= {"winRate", "valueAtRisk", "expectedShortfall"}
METRICS = [
    ("Total return", "totalReturn"),
    ("CAGR", "cagr"),
    ("Volatility (annualised)", "volatility"),
    ("Sharpe", "sharpe"),
    ("Sortino", "sortino"),
    ("Calmar", "calmar"),
    ("Omega", "omega"),
    ("Max drawdown", "maxDrawdown"),
    ("Longest drawdown (periods)", "maxDrawdownDuration"),
    ("Skew", "skew"),
    ("Excess kurtosis", "kurtosis"),
    ("Tail ratio", "tailRatio"),
    ("Best period", "bestPeriod"),
    ("Worst period", "worstPeriod"),
    ("Win rate", "winRate"),
    ("Ulcer index", "ulcerIndex"),
    ("VaR 95 % (historical)", "valueAtRisk"),
    ("ES 95 % (historical)", "expectedShortfall"),
]
# An error's `extensions.classification` (schema/extensions.py) as the report's HTTP status.
STATUS = {"UNAUTHORIZED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "BAD_REQUEST": 400}
CHART_POINTS = 600  # a chart's path keeps at most this many points
STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#0f172a}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.2rem .5rem;
border-bottom:1px solid #e2e8f0;text-align:right}th:first-child,td:first-child{text-align:left}
.demo{background:#f59e0b;padding:.1rem .4rem;font-weight:700;font-size:.8rem}
small{color:#64748b}svg{background:#fff;border:1px solid #e2e8f0}"""


def number(value: object, percent: bool = False) -> str:
    """A metric for the page; an undefined one (null) is a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return html.escape(str(value))
    return f"{value * 100:.2f}%" if percent else f"{value:,.2f}"


def day(value: object) -> str:
    """An ISO time's date, or the date of milliseconds since the epoch (numpy's too)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value[:10]
    return datetime.fromtimestamp(float(value) / 1000, UTC).date().isoformat()  # type: ignore[arg-type]


def svg_chart(
    timestamps: Sequence[int],
    values: Sequence[float | None],
    *,
    label: str,
    colour: str = "#2563eb",
    fill: bool = False,
) -> str:
    """A line (or filled area) over time as inline SVG; undefined values are skipped."""
    present = [(t, v) for t, v in zip(timestamps, values, strict=True) if v is not None]
    if len(present) < 2:
        return f"<p><small>{html.escape(label)}: not enough data</small></p>"
    step = max(1, len(present) // CHART_POINTS)
    kept = present[::step] + ([present[-1]] if (len(present) - 1) % step else [])
    width, height, pad = 900.0, 240.0, 30.0
    t0, t1 = kept[0][0], kept[-1][0]
    low, high = min(v for _, v in kept), max(v for _, v in kept)
    low, high = (low - 1, high + 1) if low == high else (low, high)

    def at(t: int, v: float) -> str:
        x = pad + (t - t0) / (t1 - t0 or 1) * (width - 2 * pad)
        y = height - pad - (v - low) / (high - low) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(at(t, v) for t, v in kept)
    area = ""
    if fill:
        base = min(max(0.0, low), high)
        area = (
            f'<polygon fill="{colour}" fill-opacity="0.15" points="{at(t0, base)} {line}'
            f' {at(t1, base)}"/>'
        )
    return (
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="100%" role="img"'
        f' aria-label="{html.escape(label)}">{area}'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>'
        f'<text x="{pad}" y="16" font-size="12">{html.escape(label)}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="11">{day(t0)}</text>'
        f'<text x="{width - pad}" y="{height - 8}" font-size="11" text-anchor="end">'
        f"{day(t1)}</text>"
        f'<text x="{width - 4}" y="{pad}" font-size="11" text-anchor="end">{number(high)}</text>'
        f'<text x="{width - 4}" y="{height - pad}" font-size="11" text-anchor="end">'
        f"{number(low)}</text></svg>"
    )


def heat(value: float | None) -> str:
    if value is None:
        return ""
    strength = min(1.0, abs(value) / 0.1) * 0.7 + 0.15
    rgb = "22,163,74" if value >= 0 else "220,38,38"
    return f' style="background:rgba({rgb},{strength:.2f})"'


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells are HTML already (escaped by whoever made them)."""
    header = "".join(f"<th>{cell}</th>" for cell in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def calendar(years: Sequence[dict[str, Any]]) -> str:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    rows = "".join(
        f"<tr><th>{year['year']}</th>"
        + "".join(f"<td{heat(m)}>{number(m, True)}</td>" for m in year["months"])
        + f"<td><b>{number(year['total'], True)}</b></td></tr>"
        for year in years
    )
    head = "".join(f"<th>{month}</th>" for month in months)
    return (
        f"<table><thead><tr><th></th>{head}<th>Year</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render(kind: str, subject: dict[str, Any]) -> str:
    """The whole page for one subject's answer."""
    sheet = subject.get("performance") or {}
    name = html.escape(str(subject.get("name", "")))
    demo = (subject.get("dataSource") or "").startswith("demo")
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{name} · coinql"
        f" tear sheet</title><style>{STYLE}</style></head><body>",
        f"<h1>{name} <small>{kind} tear sheet</small>"
        + (' <span class="demo">DEMO DATA</span>' if demo else "")
        + "</h1>",
        f"<p><small>{sheet.get('observations', 0)} returns from {day(sheet.get('start'))} to"
        f" {day(sheet.get('end'))}; {number(sheet.get('periodsPerYear'))} periods a year;"
        f" risk-free rate {number(sheet.get('riskFreeRate'), True)}. Generated"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by coinql; conventions in"
        " docs/metrics.md.</small></p>",
    ]
    if sheet:
        parts.append(
            table(
                ["Metric", "Value"],
                [
                    [html.escape(label), number(sheet.get(key), key in PERCENT)]
                    for label, key in METRICS
                ],
            )
        )
        if sheet["undefined"]:
            reasons = "; ".join(
                f"{html.escape(u['metric'])}: {html.escape(u['reason'])}"
                for u in sheet["undefined"]
            )
            parts.append(f"<p><small>Undefined here: {reasons}</small></p>")
        equity, drawdown = sheet["equity"], sheet["drawdownSeries"]
        parts.append(svg_chart(equity["timestamps"], equity["values"], label="Growth of 1"))
        parts.append(
            svg_chart(
                drawdown["timestamps"],
                drawdown["values"],
                label="Drawdown",
                colour="#dc2626",
                fill=True,
            )
        )
        parts.append("<h2>Monthly returns</h2>" + calendar(sheet["calendar"]))
        parts.append(
            "<h2>Worst drawdowns</h2>"
            + table(
                ["Peak", "Trough", "Recovery", "Depth", "Periods"],
                [
                    [
                        day(d["peak"]),
                        day(d["trough"]),
                        day(d["recovery"]),
                        number(d["depth"], True),
                        str(d["durationPeriods"]),
                    ]
                    for d in sheet.get("drawdowns") or []
                ],
            )
        )
    else:
        parts.append("<p>No returns to report yet.</p>")
    parts.extend(extra(subject) for extra in EXTRAS.get(kind, []))
    parts.append("</body></html>")
    return "".join(parts)


def decimal(value: str | None) -> str:
    return "—" if value is None else number(float(value))


def positions(subject: dict[str, Any]) -> str:
    rows = [
        [
            html.escape(p["symbol"]),
            html.escape(p["quantity"]),
            decimal(p["marketValue"]),
            decimal(p["unrealizedPnl"]),
            number(p["weight"], True),
        ]
        for p in subject.get("positions") or []
    ]
    return "<h2>Positions</h2>" + table(
        ["Asset", "Quantity", "Value", "Unrealized", "Weight"], rows
    )


def trades(subject: dict[str, Any]) -> str:
    rows = [
        [
            html.escape(t["symbol"]),
            day(t["entryTime"]),
            day(t["exitTime"]),
            number(t["entryPrice"]),
            number(t["exitPrice"]),
            number(t["pnl"]),
            number(t["returnPct"], True),
        ]
        for t in subject.get("trades") or []
    ]
    return "<h2>Trades</h2>" + table(
        ["Symbol", "Entry", "Exit", "Entry price", "Exit price", "PnL", "Return"], rows
    )


EXTRAS: dict[str, list[Callable[[dict[str, Any]], str]]] = {
    "portfolio": [positions],
    "backtest": [trades],
}


def report_routes(graphql: CoinqlGraphQL) -> list[Route]:
    async def report(request: Request) -> Response:
        kind, subject_id = request.path_params["kind"], request.path_params["id"]
        if kind not in QUERIES:
            return error_response(404, f"no {kind} reports: asset, portfolio or backtest")
        context = await graphql.get_context(request)
        try:
            async with asyncio.timeout(graphql.settings.request_timeout_seconds):
                result = await graphql.schema.execute(
                    QUERIES[kind], variable_values={"id": subject_id}, context_value=context
                )
        except TimeoutError:
            return error_response(504, "the report took too long", code="TIMEOUT")
        finally:
            request.scope.pop(CONTEXT, None)
            await context.close()
        subject = (result.data or {}).get("subject")
        if subject is None:  # not there, not the caller's, or not signed in: as the API says
            codes = [(e.extensions or {}).get("classification") for e in result.errors or []]
            status = next((STATUS[code] for code in codes if code in STATUS), 404)
            messages = [error.message for error in result.errors or []]
            return error_response(status, "; ".join(messages) or f"no {kind} {subject_id}")
        filename = re.sub(r"[^A-Za-z0-9._-]", "-", f"coinql-{kind}-{subject_id}")[:120]
        return HTMLResponse(
            render(kind, subject),
            headers={
                "Content-Disposition": f'inline; filename="{filename}.html"',
                # nothing in a report runs or loads: a slip in escaping stays harmless
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            },
        )

    return [Route("/reports/{kind}/{id}", report)]
