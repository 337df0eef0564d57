"""Small SVG charts without a plotting library: box plots of scores per setting."""

from __future__ import annotations

from html import escape


def quartiles(values: list[float]) -> tuple[float, float, float, float, float]:
    """(min, Q1, median, Q3, max), quartiles by linear interpolation (numpy's default)."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")

    def q(p: float) -> float:
        x = p * (len(v) - 1)
        lo = int(x)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (x - lo)

    return v[0], q(0.25), q(0.5), q(0.75), v[-1]


def boxplot_svg(panels: list[tuple[str, dict[str, list[float]]]], title: str = "") -> str:
    """Horizontal box plots, one row per group (e.g. a setting, over seeds), one panel per measure; all
    panels share one axis so they can be compared. A group with one value is drawn as a dot."""
    labels = list(dict.fromkeys(k for _, groups in panels for k in groups))
    values = [x for _, groups in panels for vs in groups.values() for x in vs]
    row_h, label_w, plot_w, pad = 22, 330, 300, 28
    lo, hi = (min(values + [0.0]), max(values + [0.0])) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span

    def x_of(v: float, left: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    width = label_w + len(panels) * (plot_w + pad) + pad
    top = 44
    height = top + row_h * max(1, len(labels)) + 34
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad}" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not labels:
        out.append(f'<text x="{pad}" y="{top + 14}">no scores yet (too few rated pairs per side)</text>')
    for i, label in enumerate(labels):
        y = top + i * row_h + row_h / 2
        out.append(f'<text x="{pad}" y="{y + 4}">{escape(label)}</text>')
    for j, (name, groups) in enumerate(panels):
        left = label_w + j * (plot_w + pad)
        out.append(f'<text x="{left}" y="{top - 10}">{escape(name)}</text>')
        out.append(
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{row_h * max(1, len(labels))}" '
            'fill="none" stroke="#ccc"/>'
        )
        zero = x_of(0.0, left)
        out.append(
            f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{top + row_h * max(1, len(labels))}" '
            'stroke="#999" stroke-dasharray="3,3"/>'
        )
        ticks = [(lo, "start"), (hi, "end")]
        if lo < 0 < hi and min(-lo, hi) > 0.15 * (hi - lo):
            ticks.append((0.0, "middle"))
        for v, anchor in ticks:
            out.append(
                f'<text x="{x_of(v, left):.1f}" y="{height - 16}" text-anchor="{anchor}" fill="#555">'
                f"{v:.2f}</text>"
            )
        for i, label in enumerate(labels):
            vs = groups.get(label)
            if not vs:
                continue
            y = top + i * row_h + row_h / 2
            mn, q1, med, q3, mx = quartiles(vs)
            tip = escape(f"{label}: {name}: " + ", ".join(f"{v:.3f}" for v in sorted(vs)))
            out.append(f"<g><title>{tip}</title>")
            if len(vs) == 1:
                out.append(f'<circle cx="{x_of(med, left):.1f}" cy="{y}" r="4" fill="#3b6ea8"/>')
            else:
                out.append(
                    f'<line x1="{x_of(mn, left):.1f}" x2="{x_of(mx, left):.1f}" y1="{y}" y2="{y}" '
                    'stroke="#3b6ea8"/>'
                )
                out.append(
                    f'<rect x="{x_of(q1, left):.1f}" y="{y - 7}" width="{max(1.0, x_of(q3, left) - x_of(q1, left)):.1f}" '
                    'height="14" fill="#cfe0f3" stroke="#3b6ea8"/>'
                )
                out.append(
                    f'<line x1="{x_of(med, left):.1f}" x2="{x_of(med, left):.1f}" y1="{y - 7}" y2="{y + 7}" '
                    'stroke="#1d3f66" stroke-width="2"/>'
                )
            out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
