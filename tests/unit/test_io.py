"""Atomic writes: nothing half-written under an output's name, no temporaries left behind."""

import os
import stat

import numpy as np
import pandas as pd
import pytest
from media import encode, manifest_rows

from daml.frames import FrameSettings, extract_shard
from daml.io import atomic_path, write_csv, write_text


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


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True)
def test_files_get_the_mode_open_would_give_under_the_umask(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text(tmp_path / "report.html", "<html>")
    write_csv(tmp_path / "table.csv", pd.DataFrame({"a": [1]}))
    with atomic_path(tmp_path / "crops.npz") as tmp:
        np.savez(tmp, crops=np.zeros(3))
    for name in ("report.html", "table.csv", "crops.npz"):
        assert mode(tmp_path / name) == mode(plain) == 0o666 & ~umask, name


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True)
def test_folder_outputs_follow_the_umask(tmp_path, umask):
    video = encode(tmp_path / "v.mp4", [np.full((48, 64, 3), 90, np.uint8)] * 4)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(manifest_rows({"v": video})).to_csv(manifest, index=False)
    out = tmp_path / "frames" / "shard000"
    extract_shard(manifest, out, "ffpp", "c23", 0, 1, FrameSettings(per_video=2, max_side=0, compress=False))
    assert mode(out) == 0o777 & ~umask
    for child in out.iterdir():
        assert mode(child) == 0o666 & ~umask, child.name
