"""Face shards in memory: partial loads by position, and what became of a split's videos."""

import numpy as np
import pandas as pd

from daml.facedata import COLUMNS, describe_split, load_faces, load_table


def write_shard(folder, name, rows, skips=()):
    table = pd.DataFrame(rows, columns=COLUMNS)
    crops = np.arange(len(rows) * 8 * 8 * 3, dtype=np.uint8).reshape(len(rows), 8, 8, 3)
    np.savez(folder / f"{name}.npz", crops=crops)
    table.to_csv(folder / f"{name}.csv", index=False)
    pd.DataFrame(list(skips), columns=["key", "path", "frame", "reason"]).to_csv(
        folder / f"{name}.skips.csv", index=False)
    return folder / f"{name}.npz"


def row(video, split, label, frame=0, technique=None):
    technique = technique or ("Deepfakes" if label else "real")
    target = video.split("_")[0]
    return [f"ffpp/c23/{technique}/{video}", "ffpp", technique, "c23", video, split, label,
            target, video.split("_")[1] if "_" in video else "", target, frame]


def test_positions_load_only_those_faces_in_the_order_asked(tmp_path):
    a = write_shard(tmp_path, "shard000", [row("000", "train", 0), row("000_001", "train", 1),
                                           row("002", "test", 0)])
    b = write_shard(tmp_path, "shard001", [row("001", "train", 0, frame=f) for f in range(3)])
    table = load_table([a, b], None, ["train"])
    assert len(table) == 5 and table["target_id"].tolist()[:2] == ["000", "000"]
    assert table["source_id"].tolist()[1] == "001" and table["source_id"].tolist()[0] == ""
    picked = load_faces([a, b], 8, None, ["train"], positions=[4, 1])
    whole = load_faces([a, b], 8, None, ["train"])
    assert picked.table["key"].tolist() == [table["key"][4], table["key"][1]]
    assert np.array_equal(picked.images.numpy(), whole.images.numpy()[[4, 1]])


def test_describe_split_counts_videos_reasons_and_names_the_skip_tables(tmp_path):
    shard = write_shard(
        tmp_path, "shard000", [row("000", "val", 0), row("000", "val", 0, frame=1)],
        skips=[("ffpp/c23/real/001", "/x/001.mp4", -1, "undecodable video"),
               ("ffpp/c23/real/002", "/x/002.mp4", -1, "undecodable video"),
               ("ffpp/c23/Deepfakes/000_003", "/x/000_003.mp4", 3, "no face"),
               ("ffpp/c23/real/009", "/x/009.mp4", -1, "empty file")])  # a train video
    manifest = tmp_path / "manifest.csv"
    keys = ["ffpp/c23/real/000", "ffpp/c23/real/001", "ffpp/c23/real/002",
            "ffpp/c23/Deepfakes/000_003", "ffpp/c40/real/000", "ffpp/c23/real/009"]
    pd.DataFrame({"key": keys, "compression": [k.split("/")[1] for k in keys],
                  "split": ["val"] * 5 + ["train"], "label": [0, 0, 0, 1, 0, 0],
                  "technique": [k.split("/")[2] for k in keys]}).to_csv(manifest, index=False)
    text = describe_split([shard], manifest, "ffpp-c23", None, "val")
    assert text.startswith(f"the manifest {manifest} lists 4 val videos of ffpp-c23; "
                           "1 gave faces (2 faces); skipped whole: 2 (undecodable video); "
                           "every sampled frame lost: 1 (no face).")
    assert text.endswith(f"Skip tables: {tmp_path / 'shard000.skips.csv'}")
