"""progress.png for the morning report: every experiment coloured by status, the running best, the holdout of
each kept commit as a second series, and the kept changes numbered in a list under the plot."""

from __future__ import annotations

import math

from autoresearch import keep_rule, ledger
from autoresearch.metrics import direction
from autoresearch.report import FAILED, Summary, View, fmt, hold_value, is_sweep

COLORS = {
    keep_rule.BASELINE: "#222222",
    keep_rule.KEEP: "#2ca02c",
    keep_rule.SIMPLIFY: "#17becf",
    keep_rule.NOOP: "#a0a0a0",
    keep_rule.DISCARD: "#ff7f0e",
    keep_rule.CRASH: "#d62728",
    keep_rule.TIMEOUT: "#9467bd",
    keep_rule.INVALID: "#8c564b",
}
WIDTH_IN, DPI = 14.0, 110
LEFT_IN, RIGHT_IN = 0.95, 3.2  # the status legend lives in the right margin, clear of the data
AX_H_IN, TITLE_IN, XLABEL_IN, BOX_ROW_IN = 5.0, 0.55, 0.6, 0.24
# vertical layout of a panel in axes fractions, in the improvement direction (up is better, whatever the metric)
CORE_LO, CORE_HI = 0.26, 0.78  # baseline, kept, holdout and anything better than them
CLIP_AT, FAIL_AT = 0.15, 0.06  # much worse points sit on a line at CLIP_AT; failures (no score) on a strip
LABEL_ROWS = (0.92, 0.855)  # kept-change numbers, staggered over two rows when crowded
BOX_COLUMNS_AFTER = 10  # more kept changes than this: the numbered list goes into two columns


def draw(views: list[View], sums: list[Summary], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boxes = [_box_rows(len(s.kept)) for s in sums]
    heights = [TITLE_IN + AX_H_IN + XLABEL_IN + (0.3 + BOX_ROW_IN * rows if rows else 0) for rows in boxes]
    total = sum(heights) + 0.15
    fig = plt.figure(figsize=(WIDTH_IN, total), dpi=DPI)
    top = total
    for v, s, rows, h in zip(views, sums, boxes, heights, strict=True):
        ax_rect = _rect(LEFT_IN, top - TITLE_IN - AX_H_IN, WIDTH_IN - LEFT_IN - RIGHT_IN, AX_H_IN, total)
        box_h = h - TITLE_IN - AX_H_IN - XLABEL_IN
        box_rect = _rect(LEFT_IN, top - h, WIDTH_IN - LEFT_IN - 0.3, box_h, total) if rows else None
        _panel(fig, ax_rect, box_rect, v, s)
        top -= h
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)


def _rect(left, bottom, width, height, total_h):
    return (left / WIDTH_IN, bottom / total_h, width / WIDTH_IN, height / total_h)


def _box_rows(n_kept: int) -> int:
    return n_kept if n_kept <= BOX_COLUMNS_AFTER else math.ceil(n_kept / 2)


def _panel(fig, ax_rect, box_rect, v: View, s: Summary) -> None:
    from matplotlib import transforms
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_axes(ax_rect)
    m = v.manifest
    last = max([int(r["iter"]) for r in v.rows] + [int(v.pending.get("iter", 0)) if v.pending else 0])
    ax.set_xlim(-0.8, max(last, 1) + 0.8)
    to_val, clip_g = _y_scale(ax, v, s)
    blend = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    handles = []

    # reference: the baseline and its noise band
    ax.axhspan(s.base_val - s.floor, s.base_val + s.floor, color="#888888", alpha=0.10, lw=0)
    ax.axhline(s.base_val, color="#666666", ls=":", lw=1.2)
    handles.append(Line2D([], [], color="#666666", ls=":", lw=1.2, label="baseline (validation) ± noise floor"))

    # the incumbent over time, on the folds and on the holdout
    kx = [0] + [int(r["iter"]) for r in s.kept]
    ky = [s.base_val] + [ledger.number(r, "metric") for r in s.kept]
    hy = [s.base_hold] + [hold_value(v, r) for r in s.kept]
    ax.step(kx + [last], ky + ky[-1:], where="post", color="#1a7f1a", lw=2.2, zorder=3)
    handles.append(Line2D([], [], color="#1a7f1a", lw=2.2, label="incumbent (running best), validation"))
    ax.step(kx + [last], hy + hy[-1:], where="post", color="#3b5bdb", lw=1.6, ls="--", zorder=3)
    ax.scatter(kx, hy, marker="s", s=34, facecolor="white", edgecolor="#3b5bdb", lw=1.4, zorder=4)
    handles.append(
        Line2D(
            [], [], color="#3b5bdb", lw=1.6, ls="--", marker="s", mfc="white", label="holdout score of each kept commit"
        )
    )

    ax.fill_between([0, 1], 0, FAIL_AT * 2, color="#d62728", alpha=0.06, lw=0, transform=ax.transAxes)
    ax.text(
        0.005,
        FAIL_AT * 2 - 0.01,
        "failed: no score",
        transform=ax.transAxes,
        fontsize=7.5,
        color="#a33",
        va="top",
        ha="left",
    )
    handles += _points(ax, v, blend, to_val, clip_g)
    _kept_labels(fig, ax, v, s, blend)

    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{m['metric']} ({direction(m['higher_is_better'])})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, color="#e6e6e6", lw=0.8, zorder=0)
    ax.set_axisbelow(True)
    live = ", a step is running" if v.pending else ""
    ax.set_title(
        f"{v.tag}: {m['metric']} on validation, baseline {fmt(s.base_val)} → best {fmt(s.best_val)} "
        f"(iter {s.best_row['iter']}) · {len(s.steps)} iterations, {len(s.kept)} kept, "
        f"{len(s.failed)} failed{live}",
        loc="left",
        fontsize=11.5,
        pad=10,
    )
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=True, borderaxespad=0.0
    )
    if box_rect is not None:
        _kept_box(fig, box_rect, v, s)


def _y_scale(ax, v: View, s: Summary):
    """Set the y range so the interesting band fills the middle; returns value<-goodness and the clip goodness."""
    g = lambda x: v.sign * x  # noqa: E731  goodness: larger is better for every metric
    anchor = (
        [s.base_val, s.base_hold] + [ledger.number(r, "metric") for r in s.kept] + [hold_value(v, r) for r in s.kept]
    )
    anchor = [g(x) for x in anchor if not math.isnan(x)]
    lo = min(anchor)
    scored = [g(ledger.number(r, "metric")) for r in v.rows if r["status"] not in FAILED]
    core = anchor + [x for x in scored if not math.isnan(x) and x >= lo]
    c_lo, c_hi = min(core), max(core)
    span = max(c_hi - c_lo, 4 * s.floor if not math.isnan(s.floor) else 0, 1e-3 * max(abs(c_hi), 1e-9))
    per = span / (CORE_HI - CORE_LO)
    g0, g1 = c_lo - CORE_LO * per, c_lo + (1 - CORE_LO) * per
    if v.sign > 0:
        ax.set_ylim(g0, g1)
    else:
        ax.set_ylim(-g0, -g1)  # inverted axis: up is better for a lower-is-better metric too
    return (lambda gg: v.sign * gg), g0 + CLIP_AT * per


def _points(ax, v: View, blend, to_val, clip_g) -> list:
    from matplotlib.lines import Line2D

    groups: dict[tuple[str, bool, str], tuple[list, list]] = {}
    for r in v.rows:
        if r["status"] == keep_rule.BASELINE:
            kind, y = "o", ledger.number(r, "metric")
        elif r["status"] in FAILED or math.isnan(ledger.number(r, "metric")):
            kind, y = "X", FAIL_AT
        elif v.sign * ledger.number(r, "metric") < clip_g:
            kind, y = "v", to_val(clip_g)
        else:
            kind, y = "o", ledger.number(r, "metric")
        xs, ys = groups.setdefault((r["status"], is_sweep(r), kind), ([], []))
        xs.append(int(r["iter"]))
        ys.append(y)
    for (status, sweep, kind), (xs, ys) in groups.items():
        marker = "D" if sweep and kind == "o" else kind
        ax.scatter(
            xs,
            ys,
            transform=blend if kind == "X" else ax.transData,
            marker=marker,
            s=70 if kind == "X" else 48,
            color=COLORS.get(status, "#000000"),
            edgecolor="black" if sweep else "white",
            lw=0.9,
            zorder=5,
            clip_on=False,
        )
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="X" if st in FAILED else "o",
            ms=7,
            color=COLORS[st],
            mec="white",
            label=st if st not in FAILED else f"{st} (no score, bottom strip)",
        )
        for st in COLORS
        if any(k[0] == st for k in groups)
    ]
    if any(k[1] for k in groups):
        handles.append(Line2D([], [], ls="", marker="D", ms=6, color="#bbbbbb", mec="black", label="from a sweep"))
    if any(k[2] == "v" for k in groups):
        handles.append(
            Line2D([], [], ls="", marker="v", ms=7, color="#777777", mec="white", label="far worse (off the scale)")
        )
    return handles


def _kept_labels(fig, ax, v: View, s: Summary, blend) -> None:
    """Numbered badges in a row above the data, pushed apart so none overlap, with leader lines down."""
    if not s.kept:
        return
    xs = [int(r["iter"]) for r in s.kept]
    px = ax.transData.transform([(x, 0) for x in xs])[:, 0]
    left, right = ax.transAxes.transform([(0, 0), (1, 0)])[:, 0]
    width_px = (8 + 7 * len(str(len(xs)))) * DPI / 72  # a badge: digits at 8.5 pt plus padding, in pixels
    gap = width_px + 4
    rows = 1 if len(xs) * gap <= (right - left) * 0.9 else 2
    for row in range(rows):
        idx = list(range(row, len(xs), rows))
        placed = spread([px[i] for i in idx], gap, left + gap / 2, right - gap / 2)
        for i, p in zip(idx, placed, strict=True):
            r = s.kept[i]
            x_label = ax.transData.inverted().transform((p, 0))[0]
            y = ledger.number(r, "metric")
            ax.annotate(
                str(i + 1),
                xy=(xs[i], y),
                xycoords="data",
                xytext=(x_label, LABEL_ROWS[row]),
                textcoords=blend,
                ha="center",
                va="center",
                fontsize=8.5,
                fontweight="bold",
                color="white",
                bbox=dict(boxstyle="round,pad=0.28", fc=COLORS[r["status"]], ec="none"),
                arrowprops=dict(arrowstyle="-", color="#8a8a8a", lw=0.7, shrinkA=0, shrinkB=4),
                zorder=6,
            )


def spread(xs: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """1-D label placement: positions as close to xs as possible, at least `gap` apart, within [lo, hi].
    Overlapping labels merge into a block centred on their wanted positions (deterministic, order kept)."""
    blocks: list[list[float]] = []  # [start, count, sum of wanted positions]
    for x in sorted(xs):
        blocks.append([x, 1, x])
        while len(blocks) > 1 and blocks[-2][0] + blocks[-2][1] * gap > blocks[-1][0]:
            a, b = blocks[-2], blocks.pop()
            count, total = a[1] + b[1], a[2] + b[2]
            a[:] = [total / count - (count - 1) * gap / 2, count, total]
    out = [b[0] + k * gap for b in blocks for k in range(b[1])]
    for i in range(len(out)):  # push right off the left edge, then left off the right edge
        out[i] = max(out[i], lo if i == 0 else out[i - 1] + gap)
    for i in reversed(range(len(out))):
        out[i] = min(out[i], hi if i == len(out) - 1 else out[i + 1] - gap)
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    result = [0.0] * len(xs)
    for pos, i in zip(out, order, strict=True):
        result[i] = pos
    return result


def _kept_box(fig, rect, v: View, s: Summary) -> None:
    """The numbered list of kept changes under the plot: one line each, so the texts cannot collide."""
    box = fig.add_axes(rect)
    box.set_axis_off()
    rows = _box_rows(len(s.kept))
    cols = 1 if len(s.kept) <= BOX_COLUMNS_AFTER else 2
    chars = 130 if cols == 1 else 68
    box.text(
        0,
        1,
        "kept changes (validation Δ over the previous incumbent):",
        fontsize=9,
        fontweight="bold",
        va="top",
        transform=box.transAxes,
    )
    line_h = BOX_ROW_IN / (rect[3] * fig.get_figheight())
    inch = 1 / (rect[2] * fig.get_figwidth())  # one inch in box-axes fractions: offsets independent of columns
    for i, r in enumerate(s.kept):
        col, row = divmod(i, rows)
        x0, y = col / cols, 1 - (row + 1.35) * line_h
        what = ("[sweep] " if is_sweep(r) else "") + f"{r['category']}: {r['hypothesis']}"
        text = dict(fontsize=8.5, va="center", transform=box.transAxes)
        box.text(
            x0 + 0.12 * inch,
            y,
            str(i + 1),
            fontweight="bold",
            color="white",
            ha="center",
            bbox=dict(boxstyle="round,pad=0.28", fc=COLORS[r["status"]], ec="none"),
            **text,
        )
        box.text(x0 + 0.32 * inch, y, f"iter {r['iter']}", **text)
        box.text(x0 + 1.45 * inch, y, fmt(ledger.number(r, "delta"), sign=True), ha="right", family="monospace", **text)
        box.text(x0 + 1.65 * inch, y, shorten(what, chars), **text)


def shorten(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    if len(text) <= n:
        return text
    cut = text[: n - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[n // 2 :] else cut) + "…"
