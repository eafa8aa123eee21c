"""DeepfakeBench in and out on trees written in its exact layout (tests/deepfakebench_tree.py).

In: their JSON becomes our manifest (labels, splits, identities, the validation carve-out)
and a frames table, inconsistencies become problem rows, the crops go into face shards.
Out: face shards written in their layout and JSON read back identically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from deepfakebench_tree import BUILDERS, SIDE, make_celebdf, make_dfdc, make_ffpp, points81

from daml import config as daml_config
from daml import deepfakebench as exchange
from daml.data import deepfakebench as reader
from daml.data import manifest as mf
from daml.data.manifest import IndexSettings, read_deepfakebench_dataset
from daml.errors import DamlError
from daml.shards import CROP_COLUMNS


def settings(policy="skip", val_fraction=0.0, seed=0):
    return IndexSettings(on_inconsistency=policy, val_fraction=val_fraction, seed=seed)


def source(rgb: Path, json_path: Path, workdir: Path | None = None) -> reader.Source:
    return reader.Source(rgb, json_path, workdir or rgb.parent)


def read(dataset, rgb, json_path, workdir=None, **kwargs):
    return read_deepfakebench_dataset(dataset, source(rgb, json_path, workdir), settings(**kwargs))


def edit(json_path: Path, change) -> Path:
    """Rewrite a dataset JSON through `change(info)`."""
    info = json.loads(json_path.read_text())
    change(info)
    json_path.write_text(json.dumps(info))
    return json_path


# ---------------------------------------------------------------- reading their JSON


def test_ffpp_labels_compressions_splits_and_identities(tmp_path):
    rgb = tmp_path / "rgb"
    manifest, problems, frames = read("ffpp", rgb, make_ffpp(rgb))
    assert problems.empty
    assert list(manifest.columns) == mf.COLUMNS and manifest["key"].is_unique
    # 4 pairs x (2 reals + 4 techniques x 2 fakes) x 2 compressions
    assert len(manifest) == 4 * 10 * 2
    assert set(manifest["compression"]) == {"c23", "c40"}
    assert set(manifest["technique"]) == {"real", "Deepfakes", "Face2Face", "FaceSwap",
                                          "NeuralTextures"}
    row = manifest.set_index("key").loc["ffpp/c40/Face2Face/005_004"]
    assert (row["split"], row["label"], row["target_id"], row["source_id"], row["clip_id"]) == (
        "val", 1, "005", "004", "005")
    real = manifest.set_index("key").loc["ffpp/c23/real/006"]
    assert (real["split"], real["label"], real["target_id"], real["source_id"]) == (
        "test", 0, "006", "")
    assert real["path"] == str(rgb / "FaceForensics++/original_sequences/youtube/c23/frames/006")
    # the official splits as their JSON carries them, no carving for FF++
    assert manifest.groupby("split").size().to_dict() == {"test": 20, "train": 40, "val": 20}
    # one frames-table row per crop, named by its integer frame number, landmarks beside it
    assert list(frames.columns) == mf.FRAME_COLUMNS and len(frames) == 80 * 4
    one = frames[frames["key"] == "ffpp/c23/real/006"]
    assert one["frame"].tolist() == [0, 99, 199, 299]
    assert all(Path(p).is_file() for p in one["path"]) and all(one["landmarks"] != "")
    assert set(one["landmarks5"]) == {""}


def test_celebdf_test_list_wins_over_their_train_copy_and_val_is_carved(tmp_path):
    rgb = tmp_path / "rgb"
    manifest, problems, _ = read("celebdf", rgb, make_celebdf(rgb), val_fraction=0.3)
    assert problems.empty
    rows = manifest.set_index("video")
    # their train holds every video and their val copies test: listed videos are test only
    assert sorted(rows.index[rows["split"] == "test"]) == [
        "00000", "id0_0000", "id0_0001", "id0_id1_0000", "id0_id1_0001"]
    assert set(manifest["split"]) == {"train", "val", "test"}
    # validation carved by identity as for the official layout: idN's reals and fakes together
    val = manifest[manifest["split"] == "val"]
    for identity in set(val["target_id"]) - {"00001"}:
        assert set(manifest.loc[manifest["target_id"] == identity, "split"]) <= {"val", "test"}
    fake = rows.loc["id2_id3_0001"]
    assert (fake["technique"], fake["label"], fake["target_id"], fake["source_id"],
            fake["clip_id"]) == ("Celeb-synthesis", 1, "id2", "id3", "id2_0001")
    youtube = rows.loc["00001"]
    assert (youtube["technique"], youtube["target_id"], youtube["clip_id"]) == (
        "real", "00001", "00001")
    # the same keys as the official Celeb-DF reader gives
    assert "celebdf/none/real/id1_0000" in set(manifest["key"])


def test_dfdc_ignores_the_overwritten_val_and_reads_originals(tmp_path, caplog):
    rgb = tmp_path / "rgb"
    with caplog.at_level(logging.INFO):
        manifest, problems, _ = read("dfdc", rgb, make_dfdc(rgb), val_fraction=0.3)
    assert problems.empty, problems
    assert "overwritten DFDC val entry" in caplog.text
    rows = manifest.set_index("video")
    assert sorted(rows.index) == sorted([f"real{r}" for r in range(4)] + [f"fake{r}" for r in range(4)]
                                        + [f"test{t}" for t in range(4)])
    assert set(rows.loc[[f"test{t}" for t in range(4)], "split"]) == {"test"}
    # their val is a copy of train: our carve-out keeps a fake with its original
    train = rows[rows["split"] != "test"]
    assert set(train["split"]) == {"train", "val"}
    for r in range(4):
        assert rows.loc[f"fake{r}", "target_id"] == f"real{r}"  # from the part's metadata.json
        assert rows.loc[f"fake{r}", "split"] == rows.loc[f"real{r}", "split"]
    assert rows.loc["test1", "target_id"] == "" and rows.loc["test0", "target_id"] == "test0"
    assert rows.loc["fake0", "technique"] == "dfdc-fake" and rows.loc["fake0", "label"] == 1


def test_frame_paths_are_read_as_their_loader_reads_them(tmp_path):
    """Absolute; relative to rgb_dir (backslashes of a Windows JSON); `./` from the workdir."""
    work = tmp_path / "DeepfakeBench"
    work.mkdir()
    counts = set()
    for style in ("absolute", "rgb_dir", "dot"):
        rgb = work / style / "rgb"
        json_path = make_celebdf(rgb, style=style, workdir=work)
        text = json_path.read_text()
        assert ("\\\\" in text) == (style == "rgb_dir") and ('"./' in text) == (style == "dot")
        manifest, problems, frames = read("celebdf", rgb, json_path, workdir=work)
        assert problems.empty
        assert all(Path(p).is_file() for p in frames["path"])
        counts.add((len(manifest), len(frames)))
    assert len(counts) == 1
    # a `./` path read from another workdir: named missing, with the key to set
    rgb = work / "dot" / "rgb"
    _, problems, _ = read("celebdf", rgb, rgb.parent / "dataset_json/Celeb-DF-v2.json",
                          workdir=tmp_path)
    frames_missing = problems[problems["path"].str.endswith(".png")]
    assert len(frames_missing) == 18 * 4 and frames_missing["reason"].str.contains(
        "relative to datasets.deepfakebench workdir").all()
    assert problems["reason"].str.contains("no usable frame").sum() == 18


def test_five_points_from_their_81():
    five = np.array([[20.0, 25], [44, 25], [32, 36], [24, 46], [40, 46]])
    assert np.allclose(reader.five_points(points81(five)), five)
    assert reader.five_points(np.zeros((81, 2))) is None  # their loader's stand-in
    assert reader.five_points(np.ones((5, 2))) is None
    assert np.allclose(reader.five_points(points81(five)[:68]), five)  # 68 points suffice


# ---------------------------------------------------------------- problems


def _ffpp_breakers():
    def missing_frame(rgb, json_path):
        Path(json.loads(json_path.read_text())["FaceForensics++"]["FF-DF"]["train"]["c23"][
            "000_001"]["frames"][0]).unlink()
        return "absent"

    def bad_name(rgb, json_path):
        def change(info):
            entry = info["FaceForensics++"]["FF-real"]["train"]["c23"]["000"]
            png = Path(entry["frames"][0])
            renamed = png.with_name("first.png")
            png.rename(renamed)
            entry["frames"][0] = str(renamed)
        edit(json_path, change)
        return "not named by an integer"

    def unknown_label(rgb, json_path):
        edit(json_path, lambda info: info["FaceForensics++"].update({"FF-XX": {}}))
        return "unknown label"

    def malformed(rgb, json_path):
        def change(info):
            info["FaceForensics++"]["FF-NT"]["test"]["c40"]["006_007"] = {"label": "FF-NT"}
        edit(json_path, change)
        return "entry is not"

    def two_splits(rgb, json_path):
        def change(info):
            block = info["FaceForensics++"]["FF-FS"]
            block["val"]["c23"]["000_001"] = block["train"]["c23"]["000_001"]
        edit(json_path, change)
        return "is in splits ['train', 'val']"

    def wrong_name(rgb, json_path):
        def change(info):
            block = info["FaceForensics++"]["FF-real"]["train"]["c23"]
            block["000_001"] = block.pop("000")
        edit(json_path, change)
        return "does not follow the FF-real pattern"

    def bad_compression(rgb, json_path):
        edit(json_path, lambda info: info["FaceForensics++"]["FF-DF"]["train"].update(
            {"c99": {}}))
        return "not a compression"

    return [missing_frame, bad_name, unknown_label, malformed, two_splits, wrong_name,
            bad_compression]


@pytest.mark.parametrize("breaker", _ffpp_breakers(), ids=lambda f: f.__name__)
def test_inconsistent_json_becomes_problem_rows(tmp_path, breaker):
    rgb = tmp_path / "rgb"
    json_path = make_ffpp(rgb, compressions=("c23", "c40"), n_frames=2)
    reason = breaker(rgb, json_path)
    manifest, problems, frames = read("ffpp", rgb, json_path)
    assert len(problems) >= 1 and problems["reason"].str.contains(reason, regex=False).any()
    assert len(manifest) >= 70 and frames["key"].isin(set(manifest["key"])).all()
    # the fail policy writes problems.csv, then stops naming it
    with pytest.raises(DamlError, match="datasets.on_inconsistency: fail"):
        mf.index_deepfakebench("ffpp", source(rgb, json_path), settings("fail"),
                               tmp_path / "m.csv", tmp_path / "p.csv", tmp_path / "f.csv")
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(problems)
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "f.csv").exists()


def test_a_video_without_usable_frames_is_left_out_and_one_with_some_keeps_them(tmp_path):
    rgb = tmp_path / "rgb"
    json_path = make_celebdf(rgb, n_frames=3)
    info = json.loads(json_path.read_text())["Celeb-DF-v2"]
    for path in info["CelebDFv2_real"]["train"]["id1_0000"]["frames"]:
        Path(path).unlink()
    Path(info["CelebDFv2_real"]["train"]["id1_0001"]["frames"][1]).unlink()
    manifest, problems, frames = read("celebdf", rgb, json_path)
    assert "id1_0000" not in set(manifest["video"])
    assert problems["reason"].str.contains("no usable frame").sum() == 1
    assert len(frames[frames["key"] == "celebdf/none/real/id1_0001"]) == 2


def test_labels_of_other_datasets_and_unused_ones(tmp_path, caplog):
    rgb = tmp_path / "rgb"
    json_path = make_ffpp(rgb, compressions=("c23",), n_frames=1)
    edit(json_path, lambda info: info["FaceForensics++"].update(
        {"FF-FH": {"train": {}}, "CelebDFv2_real": {"train": {}}}))
    with caplog.at_level(logging.INFO):
        _, problems, _ = read("ffpp", rgb, json_path)
    assert "FF-FH is not used by the paper" in caplog.text  # FaceShifter, as the FF++ reader
    assert problems["reason"].str.contains("a celebdf label in the ffpp JSON").sum() == 1


def test_missing_inputs_name_their_config_keys(tmp_path):
    rgb = tmp_path / "rgb"
    json_path = make_dfdc(rgb, n_reals=1, n_frames=1)
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc.root: folder"):
        read("dfdc", tmp_path / "nowhere", json_path)
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc.json: file"):
        read("dfdc", rgb, tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc.json"):
        read("dfdc", rgb, tmp_path / "bad.json")
    with pytest.raises(DamlError, match="not 'wilddeepfake'"):
        read_deepfakebench_dataset("wilddeepfake", source(rgb, json_path), settings())


def test_config_checks_name_the_key(tmp_path, schema_path, repo):
    rgb = tmp_path / "rgb"
    json_path = make_dfdc(rgb, n_reals=1, n_frames=1)

    def validate(datasets):
        overlay = tmp_path / "overlay.yaml"
        overlay.write_text(json.dumps({"datasets": datasets}))
        return daml_config.load_config_files([repo / "config.yaml", overlay], schema_path)

    def dfdc(entry, roots=None):
        return validate({"deepfakebench": {"dfdc": entry}, "roots": roots or {}})

    validated = dfdc({"root": str(rgb), "json": str(json_path)})
    assert daml_config.deepfakebench_inputs(validated) == {
        "dfdc": {"root": str(rgb), "json": str(json_path), "workdir": None}}
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc.json: file '/no.json'"):
        dfdc({"root": str(rgb), "json": "/no.json"})
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc.root: folder"):
        dfdc({"root": str(tmp_path / "x"), "json": str(json_path)})
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc.workdir: folder"):
        dfdc({"root": str(rgb), "json": str(json_path), "workdir": str(tmp_path / "x")})
    with pytest.raises(DamlError, match=r"datasets.deepfakebench.dfdc: 'json' is a required"):
        dfdc({"root": str(rgb)})
    with pytest.raises(DamlError, match="both set"):
        dfdc({"root": str(rgb), "json": str(json_path)}, roots={"dfdc": str(rgb)})
    with pytest.raises(DamlError, match="'wilddeepfake' was unexpected"):
        validate({"deepfakebench": {"wilddeepfake": None}})


# ---------------------------------------------------------------- crops into face shards


def index(tmp_path, dataset, json_path, rgb, val_fraction=0.0):
    data = tmp_path / "data" / dataset
    mf.index_deepfakebench(dataset, source(rgb, json_path), settings(val_fraction=val_fraction),
                           data / "manifest.csv", data / "problems.csv", data / "frames.csv")
    return data


def import_all(data: Path, out: Path, dataset: str, compression: str, crop_size: int,
               per_video: int = 32, n_shards: int = 2):
    """Import every shard of a face set; returns (table, crops) of all shards, by key and frame."""
    tables, crops = [], []
    for shard in range(n_shards):
        npz = out / f"shard{shard:03d}.npz"
        exchange.import_shard(data / "manifest.csv", data / "frames.csv", npz,
                              npz.with_suffix(".csv"), npz.with_suffix(".skips.csv"), dataset,
                              compression, shard, n_shards,
                              exchange.ImportSettings(crop_size, per_video))
        table = pd.read_csv(npz.with_suffix(".csv"), dtype=exchange.TEXT, keep_default_na=False,
                            na_values={})
        tables.append(table)
        with np.load(npz) as archive:
            crops.append(archive["crops"])
    table = pd.concat(tables, ignore_index=True)
    stacked = np.concatenate(crops)
    order = np.lexsort((table["frame"].astype(int), table["key"]))
    return table.iloc[order].reset_index(drop=True), stacked[order]


def test_import_resizes_converts_bgr_and_maps_landmarks(tmp_path):
    rgb = tmp_path / "rgb"
    json_path = make_celebdf(rgb, n_ids=2, n_frames=5)
    data = index(tmp_path, "celebdf", json_path, rgb)
    table, crops = import_all(data, tmp_path / "faces", "celebdf", "none", crop_size=32,
                              per_video=3)
    assert list(table.columns) == CROP_COLUMNS and set(table["how"]) == {"imported"}
    assert crops.shape[1:] == (32, 32, 3) and crops.dtype == np.uint8
    # three of five crops per video, spread as the frames stage spreads frames (frames 0-299)
    assert sorted(set(table[table["video"] == "id1_0000"]["frame"].astype(int))) == [0, 149, 299]
    # the first crop of a video: their BGR file read back as our RGB, resized once
    frames = pd.read_csv(data / "frames.csv")
    row = table.iloc[0]
    png = frames[(frames["key"] == row["key"]) & (frames["frame"] == int(row["frame"]))].iloc[0]
    expected = cv2.resize(cv2.imread(png["path"])[..., ::-1], (32, 32),
                          interpolation=cv2.INTER_AREA)
    assert np.array_equal(crops[0], expected)
    # landmarks: their 81 points give our 5, scaled into the 32 px crop (pixel centres)
    five = reader.five_points(np.load(png["landmarks"]))
    points = np.array([[row[f"lm{i}x"], row[f"lm{i}y"]] for i in range(5)], float)
    assert np.allclose(points, (five + 0.5) * 32 / SIDE - 0.5, atol=0.006)
    assert (table[["x1", "y1", "x2", "y2"]].astype(float).iloc[0].tolist() == [0, 0, SIDE, SIDE])


def test_unreadable_png_is_a_skip_row_and_a_square_is_cut_from_a_wide_crop(tmp_path):
    rgb = tmp_path / "rgb"
    json_path = make_dfdc(rgb, n_reals=1, n_frames=2)
    data = index(tmp_path, "dfdc", json_path, rgb)
    frames = pd.read_csv(data / "frames.csv")
    broken = frames[frames["key"] == "dfdc/none/real/real0"]["path"].iloc[0]
    Path(broken).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    wide = frames[frames["key"] == "dfdc/none/real/test0"]["path"].iloc[0]
    cv2.imwrite(wide, np.zeros((SIDE, SIDE + 20, 3), np.uint8))
    table, crops = import_all(data, tmp_path / "faces", "dfdc", "none", crop_size=SIDE,
                              n_shards=1)
    skips = pd.read_csv(tmp_path / "faces/shard000.skips.csv")
    assert skips[["key", "reason"]].values.tolist() == [["dfdc/none/real/real0", "unreadable PNG"]]
    row = table[(table["key"] == "dfdc/none/real/test0")].iloc[0]
    assert [float(row[c]) for c in ("x1", "y1", "x2", "y2")] == [10, 0, SIDE + 10, SIDE]
    assert len(table) == len(frames) - 1


# ---------------------------------------------------------------- out, and back in


def test_export_then_import_gives_the_same_faces(tmp_path):
    """Our face sets exported in their layout and read back: identical crops, labels, splits,
    identities and landmarks (crops at our crop size: no resize, PNG is lossless)."""
    rgb = tmp_path / "theirs" / "rgb"
    size = 40
    shards, manifests, originals = {}, {}, {}
    jsons = {"ffpp": make_ffpp(rgb, n_frames=3), "celebdf": make_celebdf(rgb, n_frames=3),
             "dfdc": make_dfdc(rgb, n_frames=3)}
    for dataset, json_path in jsons.items():
        data = index(tmp_path / "ours", dataset, json_path, rgb, val_fraction=0.3)
        manifests[dataset] = data / "manifest.csv"
        for compression in (("c23", "c40") if dataset == "ffpp" else ("none",)):
            faceset = f"ffpp-{compression}" if dataset == "ffpp" else dataset
            folder = tmp_path / "ours/faces" / faceset
            originals[faceset] = import_all(data, folder, dataset, compression, crop_size=size)
            shards[faceset] = sorted(folder.glob("shard*.npz"))
    workdir = tmp_path / "DeepfakeBench"
    workdir.mkdir()
    out = tmp_path / "export"
    counts = exchange.export_deepfakebench(shards, manifests, out, workdir=workdir)
    assert counts["ffpp-c23"]["videos"] == 40 and counts["dfdc"]["crops"] == 12 * 3

    names = sorted(p.name for p in (out / "dataset_json").iterdir())
    assert names == sorted(["FaceForensics++.json", "FaceForensics++_c40.json", "FF-DF.json",
                            "FF-DF_c40.json", "FF-F2F.json", "FF-F2F_c40.json", "FF-FS.json",
                            "FF-FS_c40.json", "FF-NT.json", "FF-NT_c40.json",
                            "Celeb-DF-v2.json", "DFDC.json"])
    # as their loader reads it: every split (and FF++ compression) present, `./` paths from
    # the workdir, integer frame names, labels their label_dict knows
    ff = json.loads((out / "dataset_json/FF-NT_c40.json").read_text())
    assert set(ff) == {"FF-NT"} and set(ff["FF-NT"]) == {"FF-real", "FF-NT"}
    assert set(ff["FF-NT"]["FF-real"]["val"]) == {"c40"}
    for name in ("FaceForensics++", "Celeb-DF-v2", "DFDC"):
        info = json.loads((out / f"dataset_json/{name}.json").read_text())[name]
        for label, splits in info.items():
            assert set(splits) == {"train", "val", "test"}
            videos = [v for s in splits.values() for c in ([s] if name != "FaceForensics++"
                                                            else s.values()) for v in c.values()]
            for video in videos:
                assert video["label"] == label
                for path in video["frames"]:
                    assert path.startswith("./") and (workdir / path).is_file()
                    int(path.split("/")[-1].split(".")[0])
    assert not list(out.rglob("landmarks/*"))  # their 81-point files are not written
    assert "lmdb: false" in (out / "deepfakebench.yaml").read_text()

    for dataset in jsons:
        json_path = out / "dataset_json" / f"{reader.NAMES[dataset]}.json"
        data = index(tmp_path / "back", dataset, json_path, out / "rgb")
        # the export kept the carve-out's val: reading it back carves nothing
        ours = pd.read_csv(manifests[dataset], dtype=str, keep_default_na=False)
        back = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
        identity = ["key", "technique", "compression", "video", "split", "label", "target_id",
                    "source_id", "clip_id"]
        assert back[identity].equals(ours[identity]), dataset
        for compression in (("c23", "c40") if dataset == "ffpp" else ("none",)):
            faceset = f"ffpp-{compression}" if dataset == "ffpp" else dataset
            table, crops = import_all(data, tmp_path / "back/faces" / faceset, dataset,
                                      compression, crop_size=size)
            table0, crops0 = originals[faceset]
            assert np.array_equal(crops, crops0), faceset
            same = [c for c in CROP_COLUMNS if c not in ("x1", "y1", "x2", "y2")]
            assert table[same].equals(table0[same]), faceset


def test_export_of_face_sets_made_from_videos(tmp_path):
    """Face shards of the face stage (official layout): DFDC parts come from the manifest's
    video paths, detection rows keep their landmarks, and the export reads back."""
    from daml.facedata import write_face_shards

    root = tmp_path / "dfdc"
    videos = [("real", "a", 0, "train", "a", 1), ("dfdc-fake", "b", 1, "val", "a", 1),
              ("real", "c", 0, "test", "c", None), ("dfdc-fake", "d", 1, "test", "", None)]
    manifest, faces = [], []
    for technique, video, label, split, target, part in videos:
        folder = root / (f"dfdc_train_part_{part}" if part is not None else "test")
        row = dict(key=f"dfdc/none/{technique}/{video}", dataset="dfdc", technique=technique,
                   compression="none", video=video, split=split, label=label, target_id=target,
                   source_id="", clip_id=target)
        manifest.append(dict(row, path=str(folder / f"{video}.mp4"), member=""))
        for frame in (3, 17):
            crop = np.random.default_rng(frame + label).integers(0, 255, (24, 24, 3), np.uint8)
            points = {f"lm{i}{a}": 5.25 + i + (a == "y") for i in range(5) for a in "xy"}
            faces.append((dict(row, frame=frame, x1=1.0, y1=2.0, x2=30.0, y2=40.0, **points,
                               score=0.99, how="detected"), crop))
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame(manifest).to_csv(data / "manifest.csv", index=False)
    shards = write_face_shards(tmp_path / "faces", faces, n_shards=2)
    out = tmp_path / "export"
    exchange.export_deepfakebench({"dfdc": shards}, {"dfdc": data / "manifest.csv"}, out,
                                  workdir=tmp_path)
    part = out / "rgb/DFDC/train/dfdc_train_part_1"
    assert json.loads((part / "metadata.json").read_text()) == {
        "a.mp4": {"label": "REAL", "split": "train"},
        "b.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"}}
    assert np.allclose(np.load(part / "landmarks5/b/017.npy")[4], [9.25, 10.25])
    assert (out / "rgb/DFDC/test/frames/d/003.png").is_file()
    back, problems, frames = read("dfdc", out / "rgb", out / "dataset_json/DFDC.json",
                                  workdir=tmp_path)
    assert problems.empty and len(frames) == 8
    assert back.set_index("video")[["split", "target_id"]].to_dict("index") == {
        "a": {"split": "train", "target_id": "a"}, "b": {"split": "val", "target_id": "a"},
        "c": {"split": "test", "target_id": "c"}, "d": {"split": "test", "target_id": ""}}


def test_check_data_reads_deepfakebench_inputs(tmp_path):
    from daml.data.check import check_data

    rgb = tmp_path / "rgb"
    json_path = make_celebdf(rgb, n_frames=2)
    config = {"tables": {}, "sources": {}, "targets": {}}
    report = check_data({"celebdf": rgb}, set(), settings(), config, tmp_path / "check.md",
                        deepfakebench_inputs={"celebdf": {"root": str(rgb), "json": str(json_path),
                                                          "workdir": None}})
    assert f"## celebdf: DeepfakeBench JSON {json_path}" in report
    assert "18 entries indexed with 36 face crops" in report
    assert "| Celeb-real videos | 590 | 8 | **missing** |" in report  # counted from frames folders
    assert "| YouTube-real videos | 300 | 2 | **missing** |" in report
