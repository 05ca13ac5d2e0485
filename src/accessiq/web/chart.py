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


def _nice_step(value: int) -> int:
    """A round step so that four steps reach at least `value` (1, 2, 5, 10, 20, 50, ...)."""
    needed = max(1, math.ceil(value / 4))
    magnitude = 10 ** int(math.log10(needed))
    for factor in (1, 1.5, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= needed and step == int(step):
            return int(step)
    return needed


def runs_chart(runs: list[dict[str, Any]]) -> Markup:
    """Stacked bars of users created / updated / reactivated / deactivated per run, oldest on the left.

    Runs that applied nothing (dry, blocked) are drawn faded; the dot under each bar is the run's outcome.
    """
    if not runs:
        return Markup('<p class="empty">No runs yet. Run a sync to see its history here.</p>')
    totals = [sum(int(r["counts"].get(key, 0)) for key, _, _ in SERIES) for r in runs]
    step = _nice_step(max(totals))
    top = step * 4
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(runs)
    bar = min(36.0, slot * 0.6)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
        'xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Users changed by recent runs</title>',
    ]
    for i in range(5):
        value = step * i
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value}</text>')
    for index, run in enumerate(runs):
        x = LEFT + slot * index + (slot - bar) / 2
        y = TOP + plot_h
        applied = not run.get("dry_run") and run["status"] in ("succeeded", "succeeded_with_errors")
        opacity = "1" if applied else "0.4"
        tip = [f"Run {run['id']}{' (dry run)' if run.get('dry_run') else ''}: {run['status'].replace('_', ' ')}"]
        for key, label, color in SERIES:
            count = int(run["counts"].get(key, 0))
            tip.append(f"{count} {label}")
            if count <= 0:
                continue
            height = plot_h * count / top
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{color}" '
                f'fill-opacity="{opacity}"><title>{escape(", ".join(tip))}</title></rect>'
            )
        cx = x + bar / 2
        outcome = OUTCOME_COLORS.get(run["status"], "#9aa3ad")
        parts.append(
            f'<a href="/runs/{int(run["id"])}"><circle cx="{cx:.1f}" cy="{TOP + plot_h + 10}" r="4" '
            f'fill="{outcome}"><title>{escape(", ".join(tip))}</title></circle>'
            f'<text x="{cx:.1f}" y="{TOP + plot_h + 28}" class="axis" text-anchor="middle">#{int(run["id"])}</text></a>'
        )
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{color}"></i>{label}</span>' for _, label, color in SERIES)
    legend += '<span class="legend-note">faded bars were not applied (dry or blocked runs) · dot = outcome</span>'
    return Markup("".join(parts) + f'<div class="legend">{legend}</div>')
