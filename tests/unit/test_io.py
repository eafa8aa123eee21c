"""Atomic writes: nothing half-written under an output's name, no temporaries left behind."""

import pytest

from daml.io import atomic_path, write_text


def test_failed_write_leaves_the_destination_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_next_write_removes_what_a_killed_attempt_left(tmp_path):
    # SIGKILL skips every cleanup: the attempt's temporary stays beside the destination
    left = tmp_path / ".out.csv.k1ll_3d0.csv"
    left.write_text("half")
    others = [".out.csv.short.csv", ".other.csv.abcdefgh.csv", ".out.csv.abcdefgh.tsv"]
    for name in others:
        (tmp_path / name).write_text("not ours")
    write_text(tmp_path / "out.csv", "whole")
    assert (tmp_path / "out.csv").read_text() == "whole"
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + ["out.csv"])
