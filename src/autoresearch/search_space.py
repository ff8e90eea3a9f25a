"""train.py's SEARCH_SPACE: read and checked without running train.py, and PARAMS rewritten in place.

    SEARCH_SPACE = {
        "learning_rate": {"low": 0.01, "high": 0.3, "log": True},   # float (log scale)
        "num_leaves": {"low": 8, "high": 128},                      # int: low, high and PARAMS value are ints
        "boosting": {"choices": ["gbdt", "dart"]},                  # one of a list
    }

Every key must be a key of PARAMS whose current value is a literal inside the range: the sweep starts
from it, and writes the winner back into that literal (every other byte of train.py stays as it was).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math

from autoresearch.errors import UserError

WHERE = "train.py"
NUMERIC_FIELDS = {"low", "high", "log"}
SCALARS = (str, int, float, bool, type(None))
EXAMPLE = (
    'SEARCH_SPACE = {"learning_rate": {"low": 0.01, "high": 0.3, "log": True}, "num_leaves": {"low": 8, "high": 128}}'
)


class SearchSpaceError(UserError):
    """SEARCH_SPACE or PARAMS cannot be swept; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class Dim:
    name: str
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()


# a best value closer than this to a bound (a share of the range, in log space for log knobs); dogfood round 9
# was told 5 of 2..32 (a tenth up) was at the bottom after it had widened the range there
EDGE_SHARE = 0.06
# bounds nothing lies beyond: a penalty or a count at 0, a fraction at 1.0 (dogfood round 8: reg_alpha 0.44
# of 0..10 was called "at the bottom", where widening is impossible)
NATURAL_BOUNDS = {"low": (0,), "high": (1.0,)}


def at_edge(dims, values: dict) -> list[str]:
    """Words for each numeric knob whose value sits at a bound of its range: the best may lie beyond it."""
    out = []
    for d in dims:
        v = values.get(d.name)
        if d.kind == "categorical" or not isinstance(v, (int, float)) or d.high <= d.low:
            continue
        scale = (lambda x: math.log(x)) if d.log and d.low > 0 else (lambda x: x)
        where = (scale(min(max(v, d.low), d.high)) - scale(d.low)) / (scale(d.high) - scale(d.low))
        top = where > 1 - EDGE_SHARE and not (d.kind == "float" and d.high in NATURAL_BOUNDS["high"])
        bottom = where < EDGE_SHARE and d.low not in NATURAL_BOUNDS["low"]
        if top or bottom:
            out.append(f"{d.name} {v!r} is at the {'top' if top else 'bottom'} of its range {d.low!r}..{d.high!r}")
    return out


class _NotLiteral:
    """A PARAMS value computed at import time (e.g. SEED + 1): fine unless the sweep has to rewrite it."""

    def __repr__(self) -> str:
        return "<not a literal>"


NOT_LITERAL = _NotLiteral()


# ---------------------------------------------------------------------------
# Reading train.py statically


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    """Top-level `NAME = value` (or `NAME: T = value`); the last one wins, as when the module runs."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as e:
        raise SearchSpaceError(f"{WHERE} line {e.lineno}: SyntaxError ({e.msg}); fix it before sweeping") from None


def read_params(source: str) -> dict:
    """PARAMS as written: literal values, NOT_LITERAL for computed ones."""
    node = _assignments(_parse(source)).get("PARAMS")
    if not isinstance(node, ast.Dict):
        raise SearchSpaceError(
            f"{WHERE}: PARAMS must be a dict literal at the top level, e.g. "
            'PARAMS = {"learning_rate": 0.05, "num_leaves": 31}, so the sweep can rewrite it'
        )
    out = {}
    for k, v in zip(node.keys, node.values, strict=True):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            raise SearchSpaceError(
                f"{WHERE} line {v.lineno}: PARAMS keys must be plain strings in quotes (no **spread, no computed keys)"
            )
        try:
            out[k.value] = ast.literal_eval(v)
        except ValueError:
            out[k.value] = NOT_LITERAL
    return out


def declaration_lines(source: str, names: tuple[str, ...]) -> list[str]:
    """The source lines of the top-level statements that assign `names`, in file order (what a sweep
    rewrote, so the agent's next Edit can start from them without a Read)."""
    lines = source.splitlines()
    out = []
    for node in _parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id in names for t in targets):
            out += lines[node.lineno - 1 : node.end_lineno]
    return out


def read_space(source: str) -> dict | None:
    """SEARCH_SPACE as written, or None when train.py declares none."""
    node = _assignments(_parse(source)).get("SEARCH_SPACE")
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise SearchSpaceError(
            f"{WHERE} line {node.lineno}: SEARCH_SPACE must be written out as a literal dict (numbers, strings, "
            f"lists, True/False; no names or arithmetic) so it can be checked without running train.py, e.g. "
            f"{EXAMPLE}"
        ) from None


def load(source: str) -> tuple[dict, list[Dim]]:
    """(PARAMS, the validated dimensions) of train.py's source; raises when there is nothing to sweep."""
    params = read_params(source)
    space = read_space(source)
    if space is None:
        raise SearchSpaceError(
            f"{WHERE} has no SEARCH_SPACE: declare the knobs the sweep may tune next to PARAMS, e.g. {EXAMPLE}"
        )
    return params, validate(space, params)


def new_knobs(source: str, incumbent_source: str) -> list[str]:
    """The PARAMS keys `source` adds to the incumbent's, when every one of them is in a valid SEARCH_SPACE
    (a KNOB verdict may keep them for the sweep); [] otherwise, and for anything that does not parse."""
    try:
        params, dims = load(source)
        before = read_params(incumbent_source)
    except SearchSpaceError:
        return []
    added = [k for k in params if k not in before]
    swept = {d.name for d in dims}
    return added if added and all(k in swept for k in added) else []


# ---------------------------------------------------------------------------
# Validation


def validate(space, params: dict) -> list[Dim]:
    if not isinstance(space, dict):
        raise SearchSpaceError(f"{WHERE}: SEARCH_SPACE must be a dict of PARAMS key -> range, e.g. {EXAMPLE}")
    if not space:
        raise SearchSpaceError(
            f"{WHERE}: SEARCH_SPACE is empty, so there is nothing to sweep; declare at least one knob, e.g. {EXAMPLE}"
        )
    return [_dim(name, spec, params) for name, spec in space.items()]


def _dim(name, spec, params: dict) -> Dim:
    at = f"{WHERE}: SEARCH_SPACE[{name!r}]"
    if name not in params:
        known = ", ".join(map(repr, params)) or "none"
        raise SearchSpaceError(
            f"{at}: {name!r} is not a key of PARAMS (keys: {known}); add it to PARAMS with "
            "its current value, or fix the spelling"
        )
    current = params[name]
    if current is NOT_LITERAL:
        raise SearchSpaceError(
            f"{at}: PARAMS[{name!r}] is computed, not a literal; write its value out "
            "(e.g. 0.05) so the sweep can start from it and rewrite it"
        )
    if not isinstance(spec, dict):
        raise SearchSpaceError(
            f'{at} = {spec!r} must be a dict: {{"low": ..., "high": ...}} with optional '
            '"log": True, or {"choices": [...]}'
        )
    if "choices" in spec:
        return _categorical(at, name, spec, current)
    return _numeric(at, name, spec, current)


def _categorical(at: str, name: str, spec: dict, current) -> Dim:
    extra = sorted(set(spec) - {"choices"})
    if extra:
        raise SearchSpaceError(
            f"{at}: unknown field {extra[0]!r} next to 'choices'; a list of choices takes no other fields (remove it)"
        )
    choices = spec["choices"]
    if not isinstance(choices, (list, tuple)) or len(choices) < 2:
        raise SearchSpaceError(f"{at}: 'choices' = {choices!r} must be a list of at least two values")
    if not all(isinstance(c, SCALARS) for c in choices):
        raise SearchSpaceError(f"{at}: 'choices' may hold only strings, numbers, True/False or None")
    if len({json.dumps(c) for c in choices}) != len(choices):
        raise SearchSpaceError(f"{at}: 'choices' = {list(choices)!r} lists a value twice; remove the duplicate")
    if not any(c == current and type(c) is type(current) for c in choices):
        raise SearchSpaceError(
            f"{at}: the current PARAMS[{name!r}] = {current!r} is not among the choices "
            f"{list(choices)!r}; add it (the sweep starts from the current value)"
        )
    return Dim(name, "categorical", choices=tuple(choices))


def _numeric(at: str, name: str, spec: dict, current) -> Dim:
    unknown = sorted(set(spec) - NUMERIC_FIELDS)
    if unknown:
        raise SearchSpaceError(
            f"{at}: unknown field {unknown[0]!r}; a range takes 'low', 'high' and optionally "
            "'log' (or give 'choices' alone)"
        )
    missing = [f for f in ("low", "high") if f not in spec]
    if missing:
        raise SearchSpaceError(
            f'{at}: {missing[0]!r} is missing; a range needs both, e.g. {{"low": 0.01, "high": 0.3}}'
        )
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    for field, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SearchSpaceError(f"{at}: {field!r} = {v!r} must be a number")
    if not isinstance(log, bool):
        raise SearchSpaceError(f"{at}: 'log' = {log!r} must be True or False")
    if low >= high:
        what = "empty" if low == high else "inverted"
        raise SearchSpaceError(
            f"{at}: the range is {what} (low {low!r} >= high {high!r}); make low < high "
            "(to pin a value, remove the key from SEARCH_SPACE)"
        )
    if log and low <= 0:
        raise SearchSpaceError(f"{at}: 'log': True needs low > 0 (got {low!r}); raise low or drop 'log'")
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise SearchSpaceError(
            f"{at}: PARAMS[{name!r}] = {current!r} is a {type(current).__name__}, but the "
            'range is numeric; use {"choices": [...]} for non-numbers'
        )
    if isinstance(current, int) and not (isinstance(low, int) and isinstance(high, int)):
        raise SearchSpaceError(
            f"{at}: PARAMS[{name!r}] = {current!r} is an int but the range {low!r}..{high!r} "
            f"has floats; write low and high as whole numbers for an integer knob, or the "
            f"current value as {float(current)!r} for a real-valued one"
        )
    if not low <= current <= high:
        raise SearchSpaceError(
            f"{at}: the current PARAMS[{name!r}] = {current!r} is outside {low!r}..{high!r}; "
            "widen the range (the sweep starts from the current value)"
        )
    kind = "int" if isinstance(current, int) else "float"
    return Dim(
        name, kind, low=low if kind == "int" else float(low), high=high if kind == "int" else float(high), log=log
    )


# ---------------------------------------------------------------------------
# Rewriting train.py


def literal(value) -> str:
    """Python source for a scalar; strings in double quotes, like the rest of train.py."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return repr(value)  # int, bool, None


def rewrite(source: str, changes: dict, declarations: dict[str, str] | None = None) -> str:
    """Replace the values of `changes`' keys inside the PARAMS literal, and the string literals of
    `declarations` (e.g. HYPOTHESIS, CATEGORY); every other byte stays as it was.

    Works on UTF-8 bytes because ast column offsets are byte offsets.
    """
    tree = _parse(source)
    top = _assignments(tree)
    node = top.get("PARAMS")
    if changes and not isinstance(node, ast.Dict):
        raise SearchSpaceError(f"{WHERE}: PARAMS is not a dict literal; it cannot be rewritten")
    keys = zip(node.keys, node.values, strict=True) if isinstance(node, ast.Dict) else ()
    values = {k.value: v for k, v in keys if isinstance(k, ast.Constant)}
    edits = []
    for name, value in changes.items():
        if name not in values:
            raise SearchSpaceError(f"{WHERE}: PARAMS has no key {name!r} to rewrite")
        edits.append((values[name], literal(value)))
    insert = []
    for name, text in (declarations or {}).items():
        target = top.get(name)
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            edits.append((target, literal(text)))
        else:  # missing or not a literal: declare it just above PARAMS (or the first function)
            insert.append(f"{name} = {literal(text)}\n")
    data = source.encode()
    starts = _line_starts(data)
    spans = sorted(
        (
            (_offset(starts, n.lineno, n.col_offset), _offset(starts, n.end_lineno, n.end_col_offset), t)
            for n, t in edits
        ),
        reverse=True,
    )
    for a, b, text in spans:
        data = data[:a] + text.encode() + data[b:]
    if insert:
        anchors = [s for s in tree.body if node is not None and getattr(s, "value", None) is node]
        anchors += [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.ClassDef))]
        at = starts[anchors[0].lineno - 1] if anchors else len(data)
        data = data[:at] + "".join(insert).encode() + data[at:]
    out = data.decode()
    _check(out, changes, declarations or {})
    return out


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(data):
        if b == 0x0A:
            starts.append(i + 1)
    return starts


def _offset(starts: list[int], lineno: int, col: int) -> int:
    return starts[lineno - 1] + col


def _check(out: str, changes: dict, declarations: dict) -> None:
    """The rewrite must read back as intended; anything else is a bug here, not the user's."""
    params = read_params(out) if changes else {}
    top = _assignments(ast.parse(out))
    bad = [k for k, v in changes.items() if params.get(k) != v or type(params.get(k)) is not type(v)]
    bad += [k for k, v in declarations.items() if getattr(top.get(k), "value", None) != v]
    if bad:
        raise RuntimeError(f"rewriting train.py went wrong for {bad}; train.py was left unchanged")
