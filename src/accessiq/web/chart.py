"""The dashboard's chart of recent runs, drawn server-side as inline SVG (no chart library, no CDN)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from markupsafe import Markup

SERIES = (
    ("users_created", "created", "#2f9e6b"),
    ("users_updated", "updated", "#3b82c4"),
    ("users_reactivated", "reactivated", "#8b6fd0"),
    ("users_deactivated", "deactivated", "#d9534f"),
)
OUTCOME_COLORS = {
    "succeeded": "#2f9e6b",
    "succeeded_with_errors": "#d99a1e",
    "failed": "#d9534f",
    "blocked": "#d9534f",
    "canceled": "#9aa3ad",
}

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 44


def _decades(largest: int) -> int:
    """How many powers of ten the axis spans: 1 reaches 10, 2 reaches 100, ..."""
    return max(1, math.ceil(math.log10(max(largest, 1) + 1)))


def _height(count: int, decades: int, plot_h: float) -> float:
    """A bar's height on the log axis: 1 and 10,000 are both visible next to each other."""
    return plot_h * math.log10(1 + count) / decades


def runs_chart(runs: list[dict[str, Any]]) -> Markup:
    """One bar per kind of change (created / updated / reactivated / deactivated) per run, oldest on the left.

    The axis is logarithmic, so a small incremental run stays visible next to a first full sync
    of thousands. Runs that applied nothing (dry, blocked) are drawn faded; the dot under each
    run is its outcome.
    """
    if not runs:
        return Markup('<p class="empty">No runs yet. Run a sync to see its history here.</p>')
    largest = max(int(r["counts"].get(key, 0)) for r in runs for key, _, _ in SERIES)
    decades = _decades(largest)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(runs)
    group = min(48.0, slot * 0.7)
    bar = group / len(SERIES)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
        'xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Users changed by recent runs (logarithmic scale)</title>',
    ]
    for power in range(decades + 1):
        # Gridlines at 0, 10, 100, ...: log10(1 + n) puts n = 10**k just above the k-th line.
        value = 10**power if power else 0
        y = TOP + plot_h - plot_h * power / decades
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value:,}</text>')
    for index, run in enumerate(runs):
        left = LEFT + slot * index + (slot - group) / 2
        applied = not run.get("dry_run") and run["status"] in ("succeeded", "succeeded_with_errors")
        opacity = "1" if applied else "0.4"
        name = f"Run {int(run['id'])}{' (dry run)' if run.get('dry_run') else ''}"
        tip = [f"{name}: {run['status'].replace('_', ' ')}"]
        for position, (key, label, color) in enumerate(SERIES):
            count = int(run["counts"].get(key, 0))
            tip.append(f"{count} {label}")
            if count <= 0:
                continue
            height = _height(count, decades, plot_h)
            parts.append(
                f'<rect x="{left + bar * position:.1f}" y="{TOP + plot_h - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{color}" fill-opacity="{opacity}" data-run="{int(run["id"])}" '
                f'data-kind="{label}"><title>{escape(f"{name}: {count} {label}")}</title></rect>'
            )
        cx = left + group / 2
        outcome = OUTCOME_COLORS.get(run["status"], "#9aa3ad")
        parts.append(
            f'<a href="/runs/{int(run["id"])}"><circle cx="{cx:.1f}" cy="{TOP + plot_h + 10}" r="4" '
            f'fill="{outcome}"><title>{escape(", ".join(tip))}</title></circle>'
            f'<text x="{cx:.1f}" y="{TOP + plot_h + 28}" class="axis" text-anchor="middle">#{int(run["id"])}</text></a>'
        )
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{color}"></i>{label}</span>' for _, label, color in SERIES)
    legend += (
        '<span class="legend-note">logarithmic scale · faded bars were not applied (dry or blocked runs) · '
        "dot = outcome</span>"
    )
    return Markup("".join(parts) + f'<div class="legend">{legend}</div>')
