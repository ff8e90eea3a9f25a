"""The profile as text: the default view, one column in full, and the compact form for the cards.

Plain data in (the dict that autoresearch.profile computes and caches), text out: no pandas, no numpy.
"""

from __future__ import annotations

import difflib

from autoresearch.errors import UserError

MAX_PAIRS = 8  # pairs shown by default (all stored ones with --all)
MAX_FACTS = 10  # structure facts shown by default (all stored ones with --all)
TOP = 30  # columns shown by default
NAME_WIDTH = 24
LINE_BYTES = 140
LEVEL_CHARS = 24  # a level longer than this is cut in the one-line view (in full with --column)
MAX_BYTES = 6_000
COMPACT_BYTES = 700
KIND_ORDER = ("num", "int", "cat", "bool", "date", "other")
KIND_NOTE = {"num": " (float)", "int": " (integer)", "cat": " (category)", "date": " (datetime)"}


def render(prof: dict, top: int | None = TOP) -> str:
    """The profile as text: every column when top is None, else the `top` strongest and a count of the rest,
    within MAX_BYTES (fewer columns when long names would overflow it)."""
    cols = prof["columns"]
    shown = len(cols) if top is None else min(top, len(cols))
    while True:
        text = _render(prof, shown, top is None)
        if top is None or shown == 0 or _bytes(text) <= MAX_BYTES:
            return text
        shown -= 1


def _render(prof: dict, n_shown: int, everything: bool) -> str:
    how = prof["method"]
    cols, n = prof["columns"], prof["n_rows"]
    shown, rest = cols[:n_shown], cols[n_shown:]
    width = min(NAME_WIDTH, max((len(_name(c["name"])) for c in shown), default=4))
    lines = [
        f"profile: the train part only ({n:,} rows x {prof['n_features']} features; the holdout is never read), "
        f"manifest {prof['manifest']}",
        _target_line(prof["target"]),
        _kinds_line(cols, n),
        f"signal: mutual information with the target in nats (H(target) = {prof['target']['entropy']:.3f}), "
        f"Miller-Madow corrected, on {prof['sample_rows']:,} rows (seeded sample, at most "
        f"{how['sample_max']:,}): numbers in <= {how['bins']} quantile bins, categoricals top "
        f"{how['top_levels']} levels + other, missing its own bin",
        "columns, strongest signal first: name, kind, missing, distinct, signal, then [min p25 median p75 max] "
        "zeros% | 'level' count (the exact strings the model sees)",
    ]
    lines += [_column_line(c, width, n) for c in shown]
    if rest:
        with_missing = sum(1 for c in rest if c["missing"])
        lines.append(
            f"  ... {len(rest)} weaker columns not shown (signal <= {rest[0]['signal']:.3f}; {with_missing} of "
            "them with missing values): `uv run autoresearch profile --all` lists them"
        )
    lines += _pairs_lines(prof["pairs"], prof["pairs_more"], None if everything else MAX_PAIRS, how)
    lines += _structure_lines(prof["structure"], prof["structure_more"], None if everything else MAX_FACTS)
    notes = _notes(prof)
    if notes:
        lines.append("notes: " + "; ".join(notes))
    lines.append("more: `uv run autoresearch profile --column NAME` shows one column in full (all levels, percentiles)")
    return "\n".join(lines)


def _target_line(t: dict, budget: int | None = 400) -> str:
    head = f"target {t['name']!r}: {t['task']}, dtype {t['dtype']}; "
    if "classes" in t:
        items = [f"{lv} {c:,} ({c / t['n']:.1%})" for lv, c in t["classes"]]
        return head + ", ".join(items) if budget is None else _fit(head, items, budget)
    q = t["quantiles"]
    return (
        f"{head}{_quantiles([q[0], q[2], q[3], q[4], q[-1]])}, mean {_g(t['mean'])}, std {_g(t['std'])}, "
        f"{t['distinct']:,} distinct, zeros {_share(t['zeros'], t['n'])}"
        + (f"; p1 {_g(q[1])}, p99 {_g(q[5])}" if budget is None else "")
    )


def _kinds_line(cols: list, n_rows: int) -> str:
    counts: dict[str, int] = {}
    for c in cols:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    kinds = ", ".join(f"{counts[k]} {k}{KIND_NOTE.get(k, '')}" for k in KIND_ORDER if k in counts)
    missing = sorted((c for c in cols if c["missing"]), key=lambda c: (-c["missing"], c["rank"]))
    if not missing:
        return f"kinds: {kinds}; missing values: none, in any column"
    head = f"kinds: {kinds}; missing values in {len(missing)} of {len(cols)} columns: "
    return _fit(head, [f"{_name(c['name'])} {_share(c['missing'], n_rows)}" for c in missing], 300)


def _column_line(c: dict, width: int, n_rows: int) -> str:
    miss = _share(c["missing"], n_rows) if c["missing"] else "-"
    head = f"  {_name(c['name']):<{width}} {c['kind']:<4} {miss:>5} {c['distinct']:>6} {c['signal']:.3f}  "
    return head + _detail(c, LINE_BYTES - _bytes(head) + max(0, len(_name(c["name"])) - width))


def _detail(c: dict, budget: int) -> str:
    if c["kind"] in ("num", "int"):
        q = c.get("quantiles")
        if not q:
            return "(no values)" if not c.get("inf") else f"inf {c['inf']}"
        text = _quantiles([q[0], q[3], q[4], q[5], q[8]])
        if c["zeros"]:
            text += f" zeros {_share(c['zeros'], c['finite'])}"
        if c.get("inf"):
            text += f" inf {c['inf']}"
        return text
    if c["kind"] == "date":
        q = c.get("quantiles")
        return f"[{_day(q[0])} .. {_day(q[-1])}]" if q else "(no values)"
    items = [f"{_cut(lv)} {n}" for lv, n in c["levels"]]
    return _fit("", items, budget, more=c["distinct"] - len(items))


def _fact(f: list, width: int = 118) -> list[str]:
    """One structure fact, in lines of about `width` (a group of equal marks can be long)."""
    if f[0] == "determines":
        return [f"{_name(f[1])} determines {_name(f[2])} ({f[3]})"]
    items = [f"{_name(c)} {_cut(v)}" for c, v in f[2]]
    lines, line = [], f"the same {f[1]:,} rows: "
    for i, item in enumerate(items):
        piece = item + (" =" if i < len(items) - 1 else "")
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = "  "
        line += piece + " "
    return lines + [line.rstrip()]


def _structure_lines(facts: list, extra: int, limit: int | None) -> list[str]:
    head = "structure (exact on every train row, columns of <= 200 values, missing counted as a value):"
    return _section(head, [_fact(f) for f in facts], extra, limit, "")


def _fact_columns(f: list) -> list[str]:
    return f[1:3] if f[0] == "determines" else [c for c, _ in f[2]]


def _section(head: str, entries: list[list[str]], extra: int, limit: int | None, unit: str) -> list[str]:
    """A listed part of the profile: head, then the first `limit` entries (each its lines), then how many are
    left (those stored but not shown, and `extra` found but not stored)."""
    if not entries:
        return [head + " none"]
    shown = entries if limit is None else entries[:limit]
    lines = [head] + [f"  {line}" for entry in shown for line in entry]
    left = len(entries) - len(shown) + extra
    if left:
        lines.append(f"  ... {left} more{unit}" + (": `--all` lists them" if len(shown) < len(entries) else ""))
    return lines


def _pairs_lines(pairs: list, extra: int, limit: int | None, how: dict) -> list[str]:
    head = (
        f"near-duplicates (|r| > {how['pair_r']} on <= {how['pair_rows']:,} sampled rows, r shown on all rows; "
        "or the same partition of the rows):"
    )
    return _section(head, [[f"{_name(a)} ~ {_name(b)} ({why})"] for a, b, why in pairs], extra, limit, " pairs")


def _notes(prof: dict) -> list[str]:
    cols, n = prof["columns"], prof["n_rows"]
    out = []
    constant = [c["name"] for c in cols if c["distinct"] <= 1 and c["missing"] in (0, n)]
    if constant:
        out.append(_fit("constant (no information): ", [_name(c) for c in constant], 200))
    ids = [c["name"] for c in cols if n >= 50 and c["distinct"] == n and c["kind"] in ("int", "cat", "other")]
    if ids:
        out.append(_fit("unique per row (an ID?): ", [_name(c) for c in ids], 200))
    inf = [c["name"] for c in cols if c.get("inf")]
    if inf:
        out.append(_fit("infinite values: ", [_name(c) for c in inf], 200))
    return out


# ---------------------------------------------------------------------------
# One column in full


def column_text(prof: dict, name: str) -> str:
    """Everything stored about one column (or the target): all kept levels, percentiles, pairs."""
    t = prof["target"]
    if name == t["name"]:
        return _target_line(t, budget=None)
    by_name = {c["name"]: c for c in prof["columns"]}
    if name not in by_name:
        close = difflib.get_close_matches(name, list(by_name), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise UserError(f"no column {name!r} in the train part{hint}")
    c, n = by_name[name], prof["n_rows"]
    lines = [
        f"column {name!r}: {c['kind']} (dtype {c['dtype']}), signal {c['signal']:.4f} "
        f"(rank {c['rank']} of {len(prof['columns'])})",
        f"rows {n:,}: missing {c['missing']:,} ({_share(c['missing'], n) if c['missing'] else 'none'}), "
        f"{c['distinct']:,} distinct values",
    ]
    if c["kind"] in ("num", "int") and c.get("quantiles"):
        labels = ("min", "p1", "p5", "p25", "median", "p75", "p95", "p99", "max")
        lines.append("percentiles: " + ", ".join(f"{k} {_g(v)}" for k, v in zip(labels, c["quantiles"], strict=True)))
        lines.append(
            f"mean {_g(c['mean'])}, std {_g(c['std'])}; zeros {c['zeros']:,} ({_share(c['zeros'], c['finite'])}), "
            f"negative {c['negative']:,}, infinite {c['inf']:,}, integer-valued: {'yes' if c['integral'] else 'no'}"
        )
    elif c["kind"] == "date" and c.get("quantiles"):
        labels = ("min", "p25", "median", "p75", "max")
        lines.append("quantiles: " + ", ".join(f"{k} {v}" for k, v in zip(labels, c["quantiles"], strict=True)))
    elif "levels" in c:
        shown = len(c["levels"])
        head = (
            f"levels ({c['distinct']:,}, commonest first, quoted exactly as the strings the model sees"
            + (f"; the {shown} commonest" if shown < c["distinct"] else "")
            + "): "
        )
        lines += _wrap(head, [f"{lv} {k:,}" for lv, k in c["levels"]])
    partners = [(b if a == name else a, how) for a, b, how in prof["pairs"] if name in (a, b)]
    if partners:
        lines.append("near-duplicate of: " + ", ".join(f"{p} ({how})" for p, how in partners))
    facts = [f for f in prof["structure"] if name in _fact_columns(f)]
    lines += [f"structure: {line}" if i == 0 else f"  {line}" for f in facts for i, line in enumerate(_fact(f))]
    return "\n".join(lines)


def compact_text(prof: dict, limit_bytes: int = COMPACT_BYTES) -> str:
    """compact() of a loaded profile. Lines in order of importance, each within its share of the limit:
    the target's balance, kinds and missing values, the categoricals' levels, the strongest columns, a hint."""
    t, cols, n = prof["target"], prof["columns"], prof["n_rows"]
    hint = "(`uv run autoresearch profile`: ranges, counts, near-duplicates, structure)"
    reserve = _bytes(hint) + 1 if limit_bytes >= 250 else 0
    if "classes" in t:
        items = [f"{lv} {k / t['n']:.1%}" for lv, k in t["classes"]]
        target = lambda room: _fit(f"target {t['name']!r} ({t['dtype']}): ", items, room)
    else:
        q = t["quantiles"]
        target = lambda room: f"target {t['name']!r} ({t['dtype']}): {_quantiles([q[0], q[2], q[3], q[4], q[-1]])}"
    counts: dict[str, int] = {}
    for c in cols:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    missing = sorted((c for c in cols if c["missing"]), key=lambda c: (-c["missing"], c["rank"]))
    head = "kinds: " + ", ".join(f"{counts[k]} {k}" for k in KIND_ORDER if k in counts) + "; missing: "
    miss = [f"{_name(c['name'])} {_share(c['missing'], n)}" for c in missing]
    kinds = lambda room: _fit(head, miss, room) if miss else head + "none"
    cats = []
    for c in cols:
        if "levels" in c:
            lv = [_cut(v) for v, _ in c["levels"][:4]]
            more = f"/+{c['distinct'] - len(lv)}" if c["distinct"] > len(lv) else ""
            cats.append(f"{_name(c['name'])} {'/'.join(lv)}{more}")
    levels = lambda room: _fit("levels: ", cats, room, sep="; ", need_one=True) if cats else ""
    names = [_name(c["name"]) for c in cols if c["signal"] > 0]
    strongest = lambda room: _fit("strongest: ", names, room, need_one=True) if names else ""
    lines: list[str] = []
    left = limit_bytes - reserve

    def take(build, cap: int) -> None:
        nonlocal left
        room = min(cap, left - (1 if lines else 0))
        line = build(room) if room >= 20 else ""
        line = clip(line, room) if _bytes(line) > room else line
        if line:
            left -= _bytes(line) + (1 if lines else 0)
            lines.append(line)

    take(target, max(limit_bytes * 3 // 10, 120))
    take(kinds, max(limit_bytes * 3 // 10, 100))
    last = min(limit_bytes // 5, 160)
    take(levels, left - last - 1 if left > last + 60 else left)
    take(strongest, last)
    if reserve:
        lines.append(hint)
    return clip("\n".join(lines), limit_bytes)


# ---------------------------------------------------------------------------
# Formatting helpers


def _bytes(s: str) -> int:
    return len(s.encode())


def clip(text: str, limit: int) -> str:
    """At most `limit` bytes: whole lines first, then the last line cut."""
    if _bytes(text) <= limit:
        return text
    out = []
    for line in text.split("\n"):
        room = limit - sum(_bytes(x) + 1 for x in out)
        if _bytes(line) <= room:
            out.append(line)
        else:
            if room > 4:
                out.append(line.encode()[: room - 3].decode(errors="ignore") + "...")
            break
    return "\n".join(out)


def _fit(prefix: str, items: list, budget: int, more: int = 0, sep: str = ", ", need_one: bool = False) -> str:
    """prefix + as many items as fit in `budget` bytes with '... +N more' for the rest (and `more` unlisted);
    "" when need_one and not even one item fits."""
    total = len(items) + more
    out = prefix
    for i, item in enumerate(items):
        piece = (sep if i else "") + item
        rest = total - i - 1
        if _bytes(out + piece + (f"{sep}... +{rest} more" if rest else "")) > budget:
            if need_one and not i:
                return ""
            return out + (sep if i else "") + f"... +{total - i} more"
        out += piece
    return out + (f"{sep}... +{more} more" if more else "")


def _wrap(head: str, items: list, width: int = 118) -> list[str]:
    """head + items joined by ", ", in lines of about `width`, never splitting an item (a level may hold spaces)."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > width and line.strip():
            lines.append(line)
            line = "  " + piece
        else:
            line += ("" if line.endswith(": ") or not line.strip() else " ") + piece
    return [*lines, line]


def _name(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "..."


def _cut(literal: str) -> str:
    return literal if len(literal) <= LEVEL_CHARS else literal[: LEVEL_CHARS - 3] + "..."


def _share(k: int, n: int) -> str:
    if not k:
        return "0%"
    p = 100 * k / max(n, 1)
    if p < 0.1:
        return "<0.1%"
    return f"{p:.0f}%" if p >= 10 else f"{p:.1f}%"


def _g(x) -> str:
    if x is None:
        return "nan"
    return f"{x:.4g}" if x != int(x) or abs(x) >= 1e6 else str(int(x))


def _quantiles(q: list) -> str:
    return "[" + " ".join(_g(x) for x in q) + "]"


def _day(s: str) -> str:
    return s[:-9] if s.endswith(" 00:00:00") else s
