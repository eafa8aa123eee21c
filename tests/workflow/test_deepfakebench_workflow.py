"""Real `snakemake` runs with DeepfakeBench inputs (a tree in its exact layout) and the export.

Table 2 on FF++ and Celeb-DF given as DeepfakeBench inputs must run with no frame extraction
and no face detection; `export_deepfakebench` then writes every face set in their layout, and
reading the export back gives the manifests the run indexed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import pytest
import yaml
from deepfakebench_tree import make_celebdf, make_dfdc, make_ffpp

from daml.data import deepfakebench as reader
from daml.data.manifest import IndexSettings, read_deepfakebench_dataset
from snakemake_runs import TINY_CONFIG, job_counts, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.timeout(2400)]

DETECTION = ("generate_benchmark", "index_dataset", "extract_frames", "align_faces")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """FF++ (c23, c40), Celeb-DF v2 and DFDC preprocessed as DeepfakeBench keeps them, at
    the tiny config's scale, and a config overlay pointing `datasets.deepfakebench` at them."""
    base = tmp_path_factory.mktemp("deepfakebench")
    rgb = base / "rgb"
    ids = [f"{i:03d}" for i in range(20)]
    pairs = {"train": list(zip(ids[0:12:2], ids[1:12:2])), "val": list(zip(ids[12:16:2], ids[13:16:2])),
             "test": list(zip(ids[16::2], ids[17::2]))}
    jsons = {"ffpp": make_ffpp(rgb, pairs=pairs, n_frames=8),
             "celebdf": make_celebdf(rgb, n_ids=6, test_ids=(0, 1), n_frames=8),
             "dfdc": make_dfdc(rgb, n_reals=4, n_frames=8)}
    overlay = base / "deepfakebench.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": {"deepfakebench": {
        dataset: {"root": str(rgb), "json": str(path)} for dataset, path in jsons.items()}}}))
    return overlay


def test_table2_from_deepfakebench_inputs_then_export(tmp_path, inputs):
    configs = (TINY_CONFIG, inputs)
    planned = job_counts(snakemake(tmp_path, "-n", "--cores", "1", "table2", configs=configs).stdout)
    assert not set(DETECTION) & set(planned), planned
    assert planned["index_deepfakebench"] == 2  # FF++ and Celeb-DF: what Table 2 reads
    assert planned["import_deepfakebench"] == 3  # ffpp-c23's 2 shards, celebdf's 1
    assert planned["make_table"] == 1

    snakemake(tmp_path, "--cores", "2", "table2", configs=configs)
    table = pd.read_csv(tmp_path / "results/tables/table2.csv")
    assert (table["kind"] == "measured").any() and table["value"].notna().any()
    manifest = pd.read_csv(tmp_path / "results/data/celebdf/manifest.csv", dtype=str,
                           keep_default_na=False)
    assert set(manifest["split"]) == {"train", "val", "test"}  # their val was a copy of test
    faces = pd.read_csv(tmp_path / "results/faces/celebdf/shard000.csv")
    assert set(faces["how"]) == {"imported"} and faces["lm0x"].notna().all()
    assert not (tmp_path / "results/frames").exists()
    # the model says its faces were imported, so `daml detect` will not pretend to repeat them
    model = torch.load(tmp_path / "results/train/ffpp-c23/daml/seed0/model.pt", weights_only=False)
    assert model["preprocessing"]["imported"] == "deepfakebench"

    # the export imports the two face sets Table 2 did not need, and still detects nothing
    planned = job_counts(
        snakemake(tmp_path, "-n", "--cores", "1", "export_deepfakebench", configs=configs).stdout)
    assert not set(DETECTION) & set(planned), planned
    assert (planned["index_deepfakebench"], planned["import_deepfakebench"]) == (1, 2)
    snakemake(tmp_path, "--cores", "2", "export_deepfakebench", configs=configs)
    out = tmp_path / "results/deepfakebench"
    info = json.loads((out / "dataset_json/FaceForensics++.json").read_text())
    first = info["FaceForensics++"]["FF-DF"]["test"]["c40"]["016_017"]["frames"][0]
    assert first.startswith("./results/deepfakebench/rgb/FaceForensics++/")
    assert (tmp_path / first).is_file()  # relative to the workflow's folder (default workdir)

    # read back as a DeepfakeBench input: the same videos, labels, splits and identities
    columns = ["key", "split", "label", "target_id", "source_id", "clip_id"]
    for dataset in ("ffpp", "celebdf", "dfdc"):
        source = reader.Source(out / "rgb", out / f"dataset_json/{reader.NAMES[dataset]}.json",
                               tmp_path)
        back, problems, frames = read_deepfakebench_dataset(
            dataset, source, IndexSettings("skip", 0.15, 0))
        ours = pd.read_csv(tmp_path / f"results/data/{dataset}/manifest.csv", dtype=str,
                           keep_default_na=False)
        assert problems.empty, problems
        assert back[columns].astype(str).equals(ours[columns]), dataset
        assert np.all(frames.groupby("key").size() == 8)
