"""Dataset readers on tiny hand-made trees: counts, labels, splits, problems, val carving."""

from __future__ import annotations

import json
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media import make_tar

from daml.data import ffpp
from daml.data import manifest as mf
from daml.data.manifest import IndexSettings, carve_validation, read_dataset, summarise
from daml.errors import DamlError

TECHNIQUES = ffpp.TECHNIQUES
FFPP_SPLITS = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}


def settings(policy="skip", val_fraction=0.0, seed=0):
    return IndexSettings(on_inconsistency=policy, val_fraction=val_fraction, seed=seed)


def touch(path: Path, data: bytes = b"\x00\x00\x00\x18ftypmp42") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_bytes(height=4, width=4) -> bytes:
    """A valid RGB PNG written by hand (zlib + CRC chunks), independent of any image library."""
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )



# ---------------------------------------------------------------- tree builders


def make_ffpp(root: Path, splits=FFPP_SPLITS, compressions=("c23", "c40")) -> Path:
    (root / "splits").mkdir(parents=True)
    for split, pairs in splits.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))
        for a, b in pairs:
            for c in compressions:
                touch(root / f"original_sequences/youtube/{c}/videos/{a}.mp4")
                touch(root / f"original_sequences/youtube/{c}/videos/{b}.mp4")
                for t in TECHNIQUES:
                    touch(root / f"manipulated_sequences/{t}/{c}/videos/{a}_{b}.mp4")
                    touch(root / f"manipulated_sequences/{t}/{c}/videos/{b}_{a}.mp4")
    return root


CELEB_TEST_LINES = [
    "1 Celeb-real/id0_0000.mp4",  # their 1 = real -> our 0
    "0 Celeb-synthesis/id0_id1_0000.mp4",  # their 0 = fake -> our 1
    "1 YouTube-real/00000.mp4",
]


def make_celebdf(root: Path, n_ids=3) -> Path:
    for i in range(n_ids):
        touch(root / f"Celeb-real/id{i}_0000.mp4")
        touch(root / f"Celeb-real/id{i}_0001.mp4")
        touch(root / f"Celeb-synthesis/id{i}_id{(i + 1) % n_ids}_0000.mp4")
        touch(root / f"Celeb-synthesis/id{i}_id{(i + 1) % n_ids}_0001.mp4")
    touch(root / "YouTube-real/00000.mp4")
    touch(root / "YouTube-real/00001.mp4")
    (root / "List_of_testing_videos.txt").write_text("\n".join(CELEB_TEST_LINES) + "\n")
    return root


def make_dfdc(root: Path) -> Path:
    parts = {
        "dfdc_train_part_0": {
            "a.mp4": {"label": "REAL", "split": "train"},
            "b.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"},
            "c.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"},
        },
        "dfdc_train_part_1": {
            "d.mp4": {"label": "REAL", "split": "train"},
            "e.mp4": {"label": "FAKE", "split": "train", "original": "d.mp4"},
        },
    }
    for part, metadata in parts.items():
        for name in metadata:
            touch(root / part / name)
        (root / part / "metadata.json").write_text(json.dumps(metadata))
    touch(root / "test/t1.mp4")
    touch(root / "test/t2.mp4")
    (root / "test/labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\n")
    return root


def make_wilddeepfake(root: Path) -> Path:
    png = png_bytes()
    make_tar(
        root / "real_train/1.tar.gz",
        {"1/real/0/0.png": png, "1/real/0/1.png": png, "1/real/1/0.png": png},
    )
    make_tar(root / "fake_train/2.tar.gz", {"2/fake/0/0.png": png, "2/fake/0/1.png": png})
    make_tar(root / "real_test/3.tar.gz", {"3/real/7/0.png": png})
    make_tar(root / "fake_test/4.tar.gz", {"4/fake/0/0.png": png, "4/fake/5/0.png": png})
    return root


BUILDERS = {
    "ffpp": make_ffpp,
    "celebdf": make_celebdf,
    "dfdc": make_dfdc,
    "wilddeepfake": make_wilddeepfake,
}


# ---------------------------------------------------------------- correct trees


def test_ffpp_pair_expansion(tmp_path):
    root = make_ffpp(tmp_path / "ffpp")
    manifest, problems = read_dataset("ffpp", root, settings())
    assert problems.empty
    assert list(manifest.columns) == mf.COLUMNS
    # 3 pairs x (2 reals + 4 techniques x 2 fakes) x 2 compressions
    assert len(manifest) == 3 * (2 + 4 * 2) * 2
    assert manifest["key"].is_unique
    train_c23 = manifest[(manifest["split"] == "train") & (manifest["compression"] == "c23")]
    reals = train_c23[train_c23["technique"] == "real"]
    assert sorted(reals["video"]) == ["000", "001"]
    assert set(reals["label"]) == {0} and set(reals["source_id"]) == {""}
    for technique in TECHNIQUES:
        fakes = train_c23[train_c23["technique"] == technique]
        assert sorted(fakes["video"]) == ["000_001", "001_000"]
        assert set(fakes["label"]) == {1}
    row = manifest.set_index("key").loc["ffpp/c40/Face2Face/001_000"]
    assert (row["target_id"], row["source_id"], row["split"]) == ("001", "000", "train")
    assert row["path"] == str(
        root.absolute() / "manipulated_sequences/Face2Face/c40/videos/001_000.mp4"
    )
    assert manifest.groupby("split").size().to_dict() == {"train": 20, "val": 20, "test": 20}
    val_videos = set(manifest.loc[manifest["split"] == "val", "video"])
    assert val_videos == {"002", "003", "002_003", "003_002"}
    assert all(Path(p).is_file() for p in manifest["path"])


def test_celebdf_inverted_labels_and_ids(tmp_path):
    root = make_celebdf(tmp_path / "celeb")
    manifest, problems = read_dataset("celebdf", root, settings())
    assert problems.empty
    assert len(manifest) == 3 * 4 + 2
    test = manifest[manifest["split"] == "test"].set_index("video")
    assert sorted(test.index) == ["00000", "id0_0000", "id0_id1_0000"]
    assert test.loc["id0_0000", "label"] == 0  # listed with 1 = real
    assert test.loc["id0_id1_0000", "label"] == 1  # listed with 0 = fake
    assert test.loc["00000", "label"] == 0
    assert set(manifest["split"]) == {"train", "test"}  # val_fraction 0
    fake = manifest.set_index("key").loc["celebdf/none/Celeb-synthesis/id2_id0_0001"]
    assert (fake["target_id"], fake["source_id"], fake["label"]) == ("id2", "id0", 1)
    assert fake["clip_id"] == "id2_0001"  # the real clip the fake is made of
    real = manifest.set_index("video").loc["id0_0000"]
    assert (real["target_id"], real["clip_id"]) == ("id0", "id0_0000")
    assert set(manifest["compression"]) == {"none"}
    assert manifest.groupby("label").size().to_dict() == {0: 8, 1: 6}


def test_dfdc_labels_and_originals(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    manifest, problems = read_dataset("dfdc", root, settings())
    assert problems.empty
    rows = manifest.set_index("video")
    assert rows["label"].to_dict() == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 1, "t1": 1, "t2": 0}
    assert rows["split"].to_dict() == {
        "a": "train",
        "b": "train",
        "c": "train",
        "d": "train",
        "e": "train",
        "t1": "test",
        "t2": "test",
    }
    assert rows.loc["b", "target_id"] == "a" and rows.loc["e", "target_id"] == "d"
    assert rows.loc["b", "clip_id"] == "a" and rows.loc["a", "clip_id"] == "a"  # its original
    assert rows.loc["b", "technique"] == "dfdc-fake" and rows.loc["a", "technique"] == "real"
    assert rows.loc["t1", "key"] == "dfdc/none/dfdc-fake/t1"


def test_wilddeepfake_sequences(tmp_path):
    root = make_wilddeepfake(tmp_path / "wild")
    manifest, problems = read_dataset("wilddeepfake", root, settings())
    assert problems.empty
    rows = manifest.set_index("video")
    assert sorted(rows.index) == [
        "fake_test/4/0",
        "fake_test/4/5",
        "fake_train/2/0",
        "real_test/3/7",
        "real_train/1/0",
        "real_train/1/1",
    ]
    assert rows.loc["real_train/1/1", "member"] == "1/real/1"
    assert rows.loc["real_train/1/1", "path"] == str(root.absolute() / "real_train/1.tar.gz")
    assert rows["label"].to_dict() == {
        "fake_test/4/0": 1,
        "fake_test/4/5": 1,
        "fake_train/2/0": 1,
        "real_test/3/7": 0,
        "real_train/1/0": 0,
        "real_train/1/1": 0,
    }
    assert rows.loc["fake_test/4/5", "split"] == "test"
    assert rows.loc["fake_train/2/0", "split"] == "train"
    # the member named really holds the sequence's frames
    with tarfile.open(rows.loc["real_train/1/0", "path"]) as archive:
        names = [
            n
            for n in archive.getnames()
            if n.startswith(rows.loc["real_train/1/0", "member"] + "/")
        ]
    assert sorted(names) == ["1/real/0/0.png", "1/real/0/1.png"]


def test_summarise_matches_direct_counts(tmp_path):
    manifest, _ = read_dataset("ffpp", make_ffpp(tmp_path / "ffpp"), settings())
    summary = summarise(manifest)
    assert list(summary.columns) == [
        "dataset",
        "compression",
        "split",
        "technique",
        "label",
        "videos",
    ]
    assert summary["videos"].sum() == len(manifest)
    row = summary[
        (summary["compression"] == "c40")
        & (summary["split"] == "test")
        & (summary["technique"] == "FaceSwap")
    ]
    assert row["videos"].tolist() == [2] and row["label"].tolist() == [1]
    assert list(dict.fromkeys(summary[summary["compression"] == "c23"]["split"])) == [
        "train",
        "val",
        "test",
    ]


# ---------------------------------------------------------------- inconsistencies
# each breaker damages a correct tree and returns (offending path, reason fragment)


def ffpp_split_names_absent(root):
    pairs = FFPP_SPLITS["test"] + [["006", "007"]]
    (root / "splits/test.json").write_text(json.dumps(pairs))
    return root / "original_sequences/youtube/c23/videos/006.mp4", "names video 006"


def ffpp_missing_fake(root):
    path = root / "manipulated_sequences/Face2Face/c40/videos/001_000.mp4"
    path.unlink()
    return path, "absent for Face2Face/c40"


def ffpp_unsplit_video(root):
    return touch(root / "original_sequences/youtube/c23/videos/999.mp4"), "named by no split"


def ffpp_empty_technique(root):
    folder = root / "manipulated_sequences/FaceSwap"
    shutil.rmtree(folder)
    (folder / "c23/videos").mkdir(parents=True)
    return folder, "empty FaceSwap folder"


def ffpp_bad_split_json(root):
    (root / "splits/val.json").write_text('[["002", "003"]')
    return root / "splits/val.json", "not a readable JSON"


def ffpp_id_in_two_splits(root):
    (root / "splits/test.json").write_text(json.dumps(FFPP_SPLITS["test"] + [["000", "001"]]))
    return root / "splits/train.json", "more than one split"


def celebdf_absent_listed(root):
    with open(root / "List_of_testing_videos.txt", "a") as handle:
        handle.write("0 Celeb-synthesis/id9_id8_0000.mp4\n")
    return root / "Celeb-synthesis/id9_id8_0000.mp4", "but absent"


def celebdf_bad_label(root):
    with open(root / "List_of_testing_videos.txt", "a") as handle:
        handle.write("2 Celeb-real/id1_0000.mp4\n")
    return root / "List_of_testing_videos.txt", "label '2' not in"


def celebdf_label_contradicts_folder(root):
    with open(root / "List_of_testing_videos.txt", "a") as handle:
        handle.write("1 Celeb-synthesis/id1_id2_0000.mp4\n")  # 1 = real, but a fake folder
    return root / "Celeb-synthesis/id1_id2_0000.mp4", "labels it real"


def celebdf_bad_name(root):
    return touch(root / "Celeb-synthesis/clip.mp4"), "does not follow"


def dfdc_bad_json(root):
    (root / "dfdc_train_part_1/metadata.json").write_text("{not json")
    return root / "dfdc_train_part_1/metadata.json", "not valid JSON"


def dfdc_no_label(root):
    path = root / "dfdc_train_part_0/metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["c.mp4"]["label"]
    path.write_text(json.dumps(metadata))
    return root / "dfdc_train_part_0/c.mp4", "lacks 'label'"


def dfdc_label_not_allowed(root):
    path = root / "dfdc_train_part_0/metadata.json"
    metadata = json.loads(path.read_text())
    metadata["b.mp4"]["label"] = "MAYBE"
    path.write_text(json.dumps(metadata))
    return root / "dfdc_train_part_0/b.mp4", "label 'MAYBE'"


def dfdc_metadata_names_absent(root):
    path = root / "dfdc_train_part_1/e.mp4"
    path.unlink()
    return path, "but absent"


def dfdc_csv_names_absent(root):
    with open(root / "test/labels.csv", "a") as handle:
        handle.write("t9.mp4,1\n")
    return root / "test/t9.mp4", "but absent"


def dfdc_csv_bad_label(root):
    (root / "test/labels.csv").write_text("filename,label\nt1.mp4,fake\nt2.mp4,0\n")
    return root / "test/t1.mp4", "label 'fake'"


def dfdc_name_twice(root):
    path = touch(root / "test/a.mp4")  # name of a real training video of part 0, here fake
    with open(root / "test/labels.csv", "a") as handle:
        handle.write("a.mp4,1\n")
    return path, "used more than once"


def dfdc_unlisted_video(root):
    return touch(root / "dfdc_train_part_1/z.mp4"), "not in"


def wild_unreadable(root):
    return touch(root / "fake_train/9.tar.gz", b"this is not gzip"), "not a readable tar.gz"


def wild_no_png(root):
    return make_tar(root / "real_test/8.tar.gz", {"8/real/0/notes.txt": b"hi"}), "no PNG"


def wild_duplicate_key(root):
    png = png_bytes()
    path = make_tar(
        root / "fake_train/6.tar.gz", {"6/fake/0/0.png": png, "x/fake/0/0.png": png}
    )
    return f"{path}::6/fake/0", "duplicate key wilddeepfake/none/wild-fake/fake_train/6/0"


def wild_wrong_class(root):
    path = make_tar(root / "real_train/7.tar.gz", {"7/fake/0/0.png": png_bytes()})
    return f"{path}::7/fake/0", "not under <N>/real/"


BREAKERS = [
    ("ffpp", ffpp_split_names_absent),
    ("ffpp", ffpp_missing_fake),
    ("ffpp", ffpp_unsplit_video),
    ("ffpp", ffpp_empty_technique),
    ("ffpp", ffpp_bad_split_json),
    ("ffpp", ffpp_id_in_two_splits),
    ("celebdf", celebdf_absent_listed),
    ("celebdf", celebdf_bad_label),
    ("celebdf", celebdf_label_contradicts_folder),
    ("celebdf", celebdf_bad_name),
    ("dfdc", dfdc_bad_json),
    ("dfdc", dfdc_no_label),
    ("dfdc", dfdc_label_not_allowed),
    ("dfdc", dfdc_metadata_names_absent),
    ("dfdc", dfdc_csv_names_absent),
    ("dfdc", dfdc_csv_bad_label),
    ("dfdc", dfdc_name_twice),
    ("dfdc", dfdc_unlisted_video),
    ("wilddeepfake", wild_unreadable),
    ("wilddeepfake", wild_no_png),
    ("wilddeepfake", wild_duplicate_key),
    ("wilddeepfake", wild_wrong_class),
]


@pytest.mark.parametrize("dataset,breaker", BREAKERS, ids=[b.__name__ for _, b in BREAKERS])
def test_inconsistency_skip_reports_and_drops(tmp_path, dataset, breaker):
    root = BUILDERS[dataset](tmp_path / dataset)
    clean, _ = read_dataset(dataset, root, settings())
    offending, reason = breaker(root)
    offending = str(offending).replace(str(root), str(root.absolute()))
    manifest, problems = read_dataset(dataset, root, settings())
    hits = problems[problems["path"] == offending]
    assert len(hits) >= 1, problems.to_string()
    assert any(reason in r for r in hits["reason"]), hits.to_string()
    # the offending entry is left out, and nothing new slipped in
    located = manifest["path"] + manifest["member"].map(lambda m: f"::{m}" if m else "")
    assert offending not in set(located)
    assert set(manifest["key"]) <= set(clean["key"])
    assert manifest["key"].is_unique


@pytest.mark.parametrize(
    "dataset,breaker", BREAKERS[::3], ids=[b.__name__ for _, b in BREAKERS[::3]]
)
def test_inconsistency_fail_raises_after_problems_written(tmp_path, dataset, breaker):
    root = BUILDERS[dataset](tmp_path / dataset)
    offending, _ = breaker(root)
    out = tmp_path / "results"
    with pytest.raises(DamlError) as error:
        mf.index_dataset(
            dataset, root, settings("fail"), out / "manifest.csv", out / "problems.csv"
        )
    assert str(Path(offending).relative_to(tmp_path)) in str(error.value)
    assert "problems.csv" in str(error.value)
    written = pd.read_csv(out / "problems.csv", dtype=str)
    assert list(written.columns) == ["path", "reason"] and len(written) >= 1
    assert not (out / "manifest.csv").exists()


def test_skip_writes_both_tables(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    dfdc_unlisted_video(root)
    out = tmp_path / "results"
    manifest = mf.index_dataset(
        "dfdc", root, settings("skip"), out / "manifest.csv", out / "problems.csv"
    )
    written = pd.read_csv(out / "manifest.csv", dtype={"video": str}, keep_default_na=False)
    assert list(written.columns) == mf.COLUMNS and len(written) == len(manifest) == 7
    problems = pd.read_csv(out / "problems.csv")
    assert problems["path"].tolist() == [str((root / "dfdc_train_part_1/z.mp4").absolute())]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_fail_message_lists_twenty_then_counts(tmp_path):
    root = make_ffpp(tmp_path / "ffpp")
    for i in range(25):
        touch(root / f"original_sequences/youtube/c23/videos/{900 + i}.mp4")
    out = tmp_path / "results"
    with pytest.raises(DamlError) as error:
        mf.index_dataset("ffpp", root, settings("fail"), out / "m.csv", out / "p.csv")
    message = str(error.value)
    assert "924.mp4" not in message and "919.mp4" in message and "and 5 more" in message
    assert len(pd.read_csv(out / "p.csv")) == 25


def test_clean_tree_passes_fail_policy(tmp_path):
    out = tmp_path / "results"
    manifest = mf.index_dataset(
        "wilddeepfake",
        make_wilddeepfake(tmp_path / "w"),
        settings("fail"),
        out / "m.csv",
        out / "p.csv",
    )
    assert len(manifest) == 6 and pd.read_csv(out / "p.csv").empty


# ---------------------------------------------------------------- roots and settings


@pytest.mark.parametrize("dataset", sorted(BUILDERS))
def test_missing_root_names_config_key(tmp_path, dataset):
    with pytest.raises(DamlError) as error:
        read_dataset(dataset, tmp_path / "nowhere", settings())
    assert f"datasets.roots.{dataset}" in str(error.value)
    assert str(tmp_path / "nowhere") in str(error.value)


@pytest.mark.parametrize("dataset", sorted(BUILDERS))
def test_wrong_root_names_expected_folders(tmp_path, dataset):
    (tmp_path / "Downloads" / "stuff").mkdir(parents=True)
    with pytest.raises(DamlError) as error:
        read_dataset(dataset, tmp_path / "Downloads", settings())
    message = str(error.value)
    assert f"datasets.roots.{dataset}" in message
    for folder in mf.EXPECTED_FOLDERS[dataset]:
        assert folder in message


def test_celebdf_without_test_list_is_an_error(tmp_path):
    root = make_celebdf(tmp_path / "celeb")
    (root / "List_of_testing_videos.txt").unlink()
    with pytest.raises(DamlError, match="List_of_testing_videos.txt"):
        read_dataset("celebdf", root, settings())


def test_bad_settings_name_their_keys(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    with pytest.raises(DamlError, match="datasets.on_inconsistency"):
        read_dataset("dfdc", root, settings(policy="ignore"))
    with pytest.raises(DamlError, match="datasets.val_fraction"):
        read_dataset("dfdc", root, settings(val_fraction=1.0))
    with pytest.raises(DamlError, match="datasets.roots"):
        read_dataset("imagenet", root, settings())


# ---------------------------------------------------------------- validation carving


def test_carving_is_deterministic_and_keeps_identities_together(tmp_path):
    root = make_celebdf(tmp_path / "celeb", n_ids=30)
    first, _ = read_dataset("celebdf", root, settings(val_fraction=0.25, seed=3))
    again, _ = read_dataset("celebdf", root, settings(val_fraction=0.25, seed=3))
    other, _ = read_dataset("celebdf", root, settings(val_fraction=0.25, seed=4))
    pd.testing.assert_frame_equal(first, again)
    val_keys = set(first.loc[first["split"] == "val", "key"])
    assert val_keys != set(other.loc[other["split"] == "val", "key"])
    # test videos never move; each identity idX lies wholly in train or wholly in val
    unlisted = first[first["split"] != "test"]
    assert set(first.loc[first["split"] == "test", "video"]) == {
        "00000",
        "id0_0000",
        "id0_id1_0000",
    }
    celeb = unlisted[unlisted["video"].str.startswith("id")]
    sides = celeb.groupby(celeb["video"].str.split("_").str[0])["split"].nunique()
    assert (sides == 1).all()
    # at least the fraction asked, overshooting by less than one group (4 videos here)
    n_val, target = len(val_keys), 0.25 * len(unlisted)
    assert target <= n_val < target + 4


def test_carving_dfdc_keeps_fakes_with_their_original(tmp_path):
    root = tmp_path / "dfdc"
    metadata = {}
    for i in range(20):
        metadata[f"r{i}.mp4"] = {"label": "REAL", "split": "train"}
        metadata[f"f{i}a.mp4"] = {"label": "FAKE", "split": "train", "original": f"r{i}.mp4"}
        metadata[f"f{i}b.mp4"] = {"label": "FAKE", "split": "train", "original": f"r{i}.mp4"}
    for name in metadata:
        touch(root / "dfdc_train_part_0" / name)
    (root / "dfdc_train_part_0/metadata.json").write_text(json.dumps(metadata))
    manifest, _ = read_dataset("dfdc", root, settings(val_fraction=0.3, seed=0))
    assert (manifest.groupby("target_id")["split"].nunique() == 1).all()
    assert 0.3 * 60 <= (manifest["split"] == "val").sum() < 0.3 * 60 + 3


def test_carving_wilddeepfake_by_archive(tmp_path):
    root = tmp_path / "wild"
    png = png_bytes()
    for n in range(12):
        folder = "real_train" if n % 2 else "fake_train"
        kind = "real" if n % 2 else "fake"
        make_tar(
            root / f"{folder}/{n}.tar.gz", {f"{n}/{kind}/{s}/0.png": png for s in range(3)}
        )
    manifest, _ = read_dataset("wilddeepfake", root, settings(val_fraction=0.4, seed=1))
    assert (manifest.groupby("path")["split"].nunique() == 1).all()
    assert 0.4 * 36 <= (manifest["split"] == "val").sum() < 0.4 * 36 + 3


def test_carve_validation_edges():
    groups = [f"g{i}" for i in range(10) for _ in range(i + 1)]  # group sizes 1..10
    assert carve_validation(groups, 0.0, 0) == set()
    chosen = carve_validation(groups, 0.5, 0)
    assert chosen == carve_validation(list(reversed(groups)), 0.5, 0)  # order of input irrelevant
    assert 0 < len(chosen) < 10
    assert sum(int(g[1:]) + 1 for g in chosen) >= 0.5 * len(groups)
    assert carve_validation(["only"] * 5, 0.9, 0) == set()  # one group always stays in train
    assert len(carve_validation(["a", "b"], 0.01, 0)) == 1  # any positive fraction gives a group


def test_ffpp_keeps_official_val(tmp_path):
    manifest, _ = read_dataset("ffpp", make_ffpp(tmp_path / "ffpp"), settings(val_fraction=0.5))
    assert set(manifest.loc[manifest["split"] == "val", "video"]) == {
        "002",
        "003",
        "002_003",
        "003_002",
    }


def test_ffpp_ignores_techniques_outside_the_paper(tmp_path):
    root = make_ffpp(tmp_path / "ffpp")
    clean, _ = read_dataset("ffpp", root, settings())
    touch(root / "manipulated_sequences/FaceShifter/c23/videos/000_001.mp4")
    manifest, problems = read_dataset("ffpp", root, settings())
    assert problems.empty
    pd.testing.assert_frame_equal(manifest, clean)
