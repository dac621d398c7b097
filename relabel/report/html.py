"""Small pieces every section of the round report uses: escaping, number and time formats, inline SVG plots.

Kept apart from relabel/report/page.py so each section module (report.py, report_review.py, report_agreement.py)
imports them without importing the page that assembles the sections.
"""
from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone

import numpy as np

BLUE, RED, GREEN, AMBER, GREY = "#2563eb", "#dc2626", "#15803d", "#d97706", "#64748b"


def e(value) -> str:
    """Escape anything for HTML text and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def pct(value) -> str:
    return "–" if value is None or not np.isfinite(float(value)) else f"{100 * float(value):.0f}%"


def v(value) -> str:
    """A number for a sortable cell's data-v attribute ('' when missing)."""
    return "" if value is None or not np.isfinite(float(value)) else f"{float(value):.6f}"


def parse_time(stamp) -> datetime | None:
    """An ISO 8601 time from the store or Label Studio as an aware UTC datetime (None if absent or unreadable)."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(str(stamp).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def age(seconds: float | None) -> str:
    """A duration for people: '45 s', '12 min', '5 h', '3 days'."""
    if seconds is None or not np.isfinite(seconds):
        return "–"
    seconds = max(float(seconds), 0.0)
    for limit, unit, size in ((90, "s", 1), (90 * 60, "min", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} days"


def when(stamp, now: datetime | None = None) -> str:
    """A stored timestamp as '2026-02-01 14:03 UTC (3 days ago)'; the raw value when it cannot be read."""
    moment = parse_time(stamp)
    if moment is None:
        return "–" if not stamp else str(stamp)
    now = now or datetime.now(timezone.utc)
    text = moment.strftime("%Y-%m-%d %H:%M UTC")
    delta = (now - moment).total_seconds()
    if delta < 0:
        return text
    return text + (" (just now)" if delta < 60 else f" ({age(delta)} ago)")


# ---- plots --------------------------------------------------------------------------------------------------
def figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def svg(fig) -> str:
    import matplotlib
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "relabel"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def img(svg_b64: str, alt: str) -> str:
    return f"<img class=\"plot\" alt=\"{e(alt)}\" src=\"data:image/svg+xml;base64,{svg_b64}\">"


def style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9, colors="#374151")


def short_name(name, limit: int = 32) -> str:
    """A class or annotator name for a plot axis: whole up to ``limit`` characters, else cut with an ellipsis
    (the HTML tables beside the plots always carry the whole name)."""
    text = str(name)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def section(anchor: str, title: str, lead: str = "", body: str = "") -> str:
    """One report section: ``lead`` is plain text (escaped here), ``body`` is HTML."""
    lead_html = f"<p class=\"lead\">{e(lead)}</p>" if lead else ""
    return f"<section id=\"{e(anchor)}\"><h2>{e(title)}</h2>{lead_html}{body}</section>"


def note(text: str) -> str:
    return f"<p class=\"note\">{e(text)}</p>"
