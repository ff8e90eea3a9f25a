"""The macOS sandbox's profile (Seatbelt, SBPL), checked on Linux where sandbox-exec cannot run: the same View
that bubblewrap gets, turned into rules, must allow no read of the harness's data or state and no write
outside the scratch folder."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import make_project

from autoresearch import layout, sandbox

RULE = re.compile(r'^\((allow|deny) ([\w*\- ]+?)(?: \((subpath|literal|target) "?((?:[^"\\]|\\.)*?)"?\))?\)$')


def rules(profile: str) -> list[tuple[str, str, str | None, str | None]]:
    out = []
    for line in profile.splitlines():
        if line == "(version 1)":
            continue
        m = RULE.match(line)
        assert m, f"not a rule this test understands: {line}"
        out.append(m.groups())
    return out


def covers(kind: str, path: str, target: str) -> bool:
    return target == path or (kind == "subpath" and target.startswith(path.rstrip("/") + "/"))


def test_the_profile_allows_nothing_private(tmp_path):
    p = make_project(tmp_path / "proj")
    raw = p.path / "mytable.csv"
    raw.write_text("a,b\n1,2\n")
    train_py = p.path / layout.TRAIN
    scratch = str(tmp_path / "scratch")
    v = sandbox.view(train_py, {"train_features.parquet": p.path / "data" / "x.parquet"}, raw, 64)
    profile = sandbox.seatbelt_profile(v, scratch)
    rs = rules(profile)
    assert rs[0][:2] == ("deny", "default")
    assert ("deny", "network*", None, None) in rs

    readable = [(k, path) for verdict, ops, k, path in rs if verdict == "allow" and "file-read*" in ops and path]
    writable = [(k, path) for verdict, ops, k, path in rs if verdict == "allow" and "file-write*" in ops]
    assert sorted(writable) == sorted([("subpath", scratch), ("literal", "/dev/null")])
    assert ("literal", str(train_py.resolve())) in readable  # the file under evaluation, and not its folder
    for target in map(str, [*layout.private_paths(p.path), p.path / ".git", raw]):  # nothing of them, nothing in them
        allowed = [path for k, path in readable if covers(k, path, target) or covers("subpath", target, path)]
        assert not allowed, f"{target} is readable through {allowed}"
    for target in (str(p.path), str(Path.home())):  # not as a whole (an interpreter may live in the home folder)
        assert not [path for k, path in readable if covers(k, path, target)], target


def test_masks_come_last_and_paths_are_quoted(tmp_path):
    odd = tmp_path / 'we"ird\\name'
    odd.mkdir()
    v = sandbox.View(read=((str(odd), str(odd)),), masks=(str(odd / "secret"),), scratch_mb=64)
    profile = sandbox.seatbelt_profile(v, str(tmp_path / "s"))
    rs = rules(profile)
    denies = [i for i, r in enumerate(rs) if r[0] == "deny" and r[3]]
    allows = [i for i, r in enumerate(rs) if r[0] == "allow"]
    assert denies and min(denies) > max(allows)  # SBPL: the last matching rule wins
    quoted = 'we\\"ird\\\\name'
    assert f'(allow file-read* (subpath "{tmp_path}/{quoted}"))' in profile
    argv = sandbox.seatbelt_argv(v, str(tmp_path / "s"), ["python", "-c", "pass"])
    assert argv[:3] == ["/usr/bin/sandbox-exec", "-p", profile] and argv[3:] == ["python", "-c", "pass"]
