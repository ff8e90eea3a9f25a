"""A static look at train.py before it runs: does it name the harness's data files or private state, or
hide what it does from this check? Each finding names the line.

Defence in depth, not the boundary: train.py runs in a sandbox that cannot see those files at all
(autoresearch.sandbox), and every frozen file is hashed before and after the run. So this judges code only:
the prose of HYPOTHESIS, CATEGORY, docstrings and comments may mention anything.
"""

from __future__ import annotations

import ast
import re

from autoresearch import layout, text
from autoresearch.contract import CATEGORIES, DECLARED, PREPARE_NAMES

ALLOWED_FROM_PREPARE = {*PREPARE_NAMES, "evaluate_cli"}
_PRIVATE_NAMES = (*layout.PREPARED, layout.MANIFEST, layout.LEDGER, "holdout.jsonl")
FORBIDDEN_TEXT = re.compile(
    "|".join([*(re.escape(n) for n in _PRIVATE_NAMES), re.escape(layout.STATE), rf"(^|[/\\]){layout.DATA}[/\\]"]),
    re.IGNORECASE,
)
# ast.parse raises ValueError, not SyntaxError, on a NUL byte in the source (Python 3.11)
UNPARSABLE = (SyntaxError, ValueError)
DYNAMIC = {"eval", "exec", "compile", "__import__", "globals", "vars"}
FORBIDDEN_MODULES = {"autoresearch", "importlib", "git", "ctypes.util"}


def findings(source: str) -> list[str]:
    """Problems found in train.py; empty when it is clean. A syntax error is left to the run (a crash)."""
    try:
        tree = ast.parse(source)
    except UNPARSABLE:
        return []
    out: list[str] = []
    # bare string statements (docstrings, notes) and the declarations are prose: only strings in use are checked
    prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    prose |= {
        id(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        and isinstance(n.value, ast.Constant)
        and any(isinstance(t, ast.Name) and t.id in DECLARED for t in n.targets)
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in prose
            and FORBIDDEN_TEXT.search(node.value)
        ):
            out.append(
                f"line {line}: the string {_short(node.value)!r} points at the harness's data or state; "
                "train.py gets its rows from the harness only"
            )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "prepare":
                    out.append(
                        f"line {line}: `import prepare` exposes the harness; use "
                        f"`from prepare import {', '.join(sorted(ALLOWED_FROM_PREPARE - {'evaluate_cli'}))}`"
                    )
                elif top in FORBIDDEN_MODULES or alias.name in FORBIDDEN_MODULES:
                    out.append(
                        f"line {line}: `import {alias.name}` is not allowed in train.py (harness internals "
                        "or dynamic imports)"
                    )
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == "prepare":
                bad = [a.name for a in node.names if a.name not in ALLOWED_FROM_PREPARE]
                if bad:
                    out.append(
                        f"line {line}: `from prepare import {', '.join(bad)}`: only "
                        f"{', '.join(sorted(ALLOWED_FROM_PREPARE))} may be imported from prepare"
                    )
            elif module.split(".")[0] in FORBIDDEN_MODULES:
                out.append(
                    f"line {line}: `from {module} import ...` is not allowed in train.py "
                    "(harness internals or dynamic imports)"
                )
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC:
            out.append(f"line {line}: {node.func.id}() runs code this check cannot see; write the code directly")
    return out


def declarations(source: str) -> dict:
    """HYPOTHESIS and CATEGORY as literal strings, without running train.py (None when not a literal),
    made one safe line (text.clean): from here they reach the commit message, the ledger, JSON and the screen."""
    return {k: None if v is None else text.clean(v) for k, v in _literals(source).items()}


def _literals(source: str) -> dict:
    out = {"HYPOTHESIS": None, "CATEGORY": None}
    try:
        tree = ast.parse(source)
    except UNPARSABLE:
        # a broken train.py is a crash, not an invalid step: still read its declarations line by line
        for name in out:
            m = re.search(rf"^{name}\s*=\s*(['\"])(.*)\1\s*(#.*)?$", source, re.MULTILINE)
            out[name] = m.group(2) if m else None
        return out
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in out and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                out[name] = node.value.value
    return out


def declaration_problems(source: str) -> list[str]:
    d = _literals(source)  # as written: a newline is the agent's to fix, even though clean() would fold it
    return [p for p in (declaration_problem(name, d[name]) for name in DECLARED) if p]


def declaration_problem(name: str, value: str | None) -> str | None:
    """What is wrong with a HYPOTHESIS or CATEGORY as written in train.py or given to `step`, or None."""
    value = (value or "").strip()
    if name == "HYPOTHESIS" and (not value or "\n" in value):
        return (
            'HYPOTHESIS must be one line of text (in train.py, a string literal), e.g. "LightGBM instead of '
            'logistic regression"; it becomes the commit message'
        )
    if name == "CATEGORY" and (not value or len(value.split()) != 1):
        return f'CATEGORY must be one word (in train.py, a string literal), e.g. "model" ({CATEGORIES})'
    return None


NOT_CODE = (*DECLARED, "SEARCH_SPACE")  # what the agent declares about the code: no statement of it counts


def statements(source: str) -> int:
    """Executable statements: what SIMPLIFY compares. Docstrings, comments, blank lines and the top-level
    declarations (NOT_CODE) do not count, nor does layout: a call wrapped over five lines is one statement.
    Unparsable source counts its non-blank, non-comment lines (it crashes anyway)."""
    try:
        tree = ast.parse(source)
    except UNPARSABLE:
        return len([ln for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")])
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            skip.add(id(body[0]))
    for node in tree.body:
        if _declares(node, NOT_CODE):
            skip.add(id(node))
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.stmt) and id(node) not in skip)


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _declares(node, names) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in node.targets)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def without_declarations(source: str, names=NOT_CODE) -> str:
    """train.py with the top-level assignments of `names` cut out: two files equal under this differ only in
    what the agent declares about the code, not in the code (the sweep may start from such a tree)."""
    try:
        tree = ast.parse(source)
    except UNPARSABLE:
        return source
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for node in tree.body:
        if _declares(node, names):
            drop.update(range(node.lineno - 1, node.end_lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)
