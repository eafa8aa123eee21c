"""The HTML report from hand-made tables, figures, manifests, face tables and benchmark files."""

import json
import base64
import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from evaluations import EvaluationWriter

from daml import report, tables
from daml.errors import DamlError
from daml.evaluations import Evaluations

SCHEMA = {
    "definitions": {
        "entry": {"type": "object", "properties": {
            "margin": {"type": "number", "default": 1.3,
                       "description": "paper: silent; we use a crop margin of 1.3 because it is common practice"}}},
    },
    "properties": {
        "frames": {"type": "object", "properties": {
            "per_video": {"type": "integer", "default": 32,
                          "description": "paper: silent; we sample 32 frames because benchmarks do"},
            "codec": {"type": "string", "description": "not a paper choice"}}},
        "train": {"type": "object", "properties": {
            "iterations": {"type": "integer", "default": 3000,
                           "description": "paper: 3000 iterations; we keep 3000"},
            "note": {"type": "string", "description": "paper: batch size 4"}}},
        "sources": {"type": "object", "additionalProperties": {"$ref": "#/definitions/entry"}},
    },
}


def test_choices_table_walks_schema():
    rows = report.choices_table(SCHEMA, config={"frames": {"per_video": 8}, "train": {"iterations": 100}})
    by_key = {r["key"]: r for r in rows}
    assert list(by_key) == ["frames.per_video", "train.iterations", "train.note", "sources.*.margin"]
    assert by_key["frames.per_video"] == {"key": "frames.per_video", "paper": "silent",
                                          "ours": "sample 32 frames", "why": "benchmarks do",
                                          "default": "32", "value": "8"}
    assert by_key["train.iterations"]["paper"] == "3000 iterations"
    assert by_key["train.iterations"]["ours"] == "keep 3000" and by_key["train.iterations"]["value"] == "100"
    assert by_key["train.note"]["paper"] == "batch size 4" and by_key["train.note"]["ours"] == ""
    assert by_key["sources.*.margin"]["ours"] == "use a crop margin of 1.3"
    assert by_key["sources.*.margin"]["why"] == "it is common practice"


def write_bench(path: Path, seconds: list[float], rss: list[float]):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"]
    lines += [f"{s}\t0:00:00\t{r}\t1\t1\t1\t0\t0\t0\t0" for s, r in zip(seconds, rss)]
    path.write_text("\n".join(lines) + "\n")


def test_stage_times_sum_per_rule(tmp_path):
    bench = tmp_path / "benchmarks"
    write_bench(bench / "align_faces" / "ffpp-c23" / "shard000.tsv", [10.5], [100.0])
    write_bench(bench / "align_faces" / "ffpp-c23" / "shard001.tsv", [20.0], [300.0])
    write_bench(bench / "train_models" / "ffpp-c23" / "seed0.tsv", [3600.0, 3700.0], [50.0, 60.0])  # repeat=2
    write_bench(bench / "make_table" / "table1.tsv", [1.0], [float("nan")])
    rows = report.stage_times(bench)
    assert [r["rule"] for r in rows] == ["align_faces", "train_models", "make_table"]  # pipeline order
    assert rows[0]["seconds"] == pytest.approx(30.5) and rows[0]["jobs"] == 2 and rows[0]["max_rss_mb"] == "300"
    assert rows[1]["seconds"] == pytest.approx(3650.0) and rows[1]["hms"] == "1:00:50"
    assert rows[2]["max_rss_mb"] == ""


def make_inputs(root: Path) -> dict:
    """A tiny results tree: table1 for DAML, one figure, one manifest, one face shard, benchmarks."""
    writer = EvaluationWriter(root)
    entries = [{"source": "ffpp-c23", "target": "ffpp-c23", "shots": 10, "paper_train": "FF++ c23",
                "paper_test": "FF++ c23"}]
    for seed, acc in ((0, 0.81), (1, 0.83)):
        for shots, gain in ((10, 0.0), (0, -0.2)):
            writer.add("ffpp-c23", "ffpp-c23", "daml", seed, shots, acc + gain, 0.9)
    out = root / "tables"
    evaluations = Evaluations(*writer.write())
    df = tables.build_table("table1", entries, ["daml"], [0, 1], evaluations, tables.load_reference())
    tables.write_table(df, out / "table1.csv", out / "table1.md", out / "table1.tex")

    from matplotlib.figure import Figure
    fig = Figure(figsize=(2, 1.5))
    fig.subplots().plot([0, 1], [1, 0])
    figure = root / "figures" / "figure2.png"
    figure.parent.mkdir(parents=True)
    fig.savefig(figure, format="png", dpi=40)

    manifest = root / "data" / "ffpp" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    pd.DataFrame({"key": ["a", "b", "c"], "dataset": "ffpp", "technique": ["real", "Deepfakes", "Deepfakes"],
                  "compression": "c23", "video": ["1", "1_2", "2_1"], "split": ["train", "train", "test"],
                  "label": [0, 1, 1], "path": "/x", "member": "", "target_id": "1", "source_id": "", "clip_id": "1"}
                 ).to_csv(manifest, index=False)
    problems = root / "data" / "ffpp" / "problems.csv"
    pd.DataFrame({"path": ["/x/9.mp4", "/x/8.mp4"], "reason": ["missing video", "missing video"]}).to_csv(problems, index=False)

    faces = root / "faces" / "ffpp-c23"
    faces.mkdir(parents=True)
    pd.DataFrame({"key": ["a", "a", "b"], "frame": [0, 5, 0], "how": ["detected", "fallback", "detected"],
                  "label": [0, 0, 1]}).to_csv(faces / "shard000.csv", index=False)
    pd.DataFrame({"key": ["a", "c"], "path": "/x", "frame": [9, -1],
                  "reason": ["no face", "undecodable"]}).to_csv(faces / "shard000.skips.csv", index=False)

    write_bench(root / "benchmarks" / "align_faces" / "ffpp-c23" / "shard000.tsv", [42.25], [123.0])
    return {
        "tables": [out / "table1.csv", out / "table1.md", out / "table1.tex"],
        "figures": [figure, figure.with_suffix(".pdf")],
        "manifests": [manifest], "problems": [problems],
        "faces": [faces / "shard000.csv", faces / "shard000.skips.csv"],
        "benchmarks_dir": root / "benchmarks",
    }


@pytest.fixture
def inputs(tmp_path):
    return make_inputs(tmp_path / "results")


CONFIG = {"seeds": [0, 1], "methods": ["daml"], "frames": {"per_video": 8}}


def test_report_contents(inputs, tmp_path):
    out = tmp_path / "report" / "index.html"
    html = report.render_report(out, config=CONFIG, synthetic=["ffpp", "dfdc"], schema=SCHEMA, **inputs)
    assert out.read_text() == html
    assert report.BANNER in html  # ffpp is used and synthetic (dfdc is not used, so not named)
    assert "Synthetic stand-ins used for: ffpp." in html
    # the table: paper numbers, ours, difference, quoted rows marked
    assert 'id="table-table1"' in html
    assert "97.24" in html and "82.00 ± 1.41" in html and "-15.24" in html
    assert '<tr class="quoted">' in html and "quoted (paper)" in html
    # embedded figure, decodable
    figure_b64 = base64.b64encode(inputs["figures"][0].read_bytes()).decode()
    assert f'src="data:image/png;base64,{figure_b64}"' in html
    # provenance: manifest hash, counts, faces, skips
    assert hashlib.sha256(inputs["manifests"][0].read_bytes()).hexdigest() in html
    assert "<td>missing video</td><td class=\"num\">2</td>" in html
    assert "<td>no face</td><td class=\"num\">1</td>" in html
    face = report.face_summary(inputs["faces"])[0]
    assert (face["videos"], face["frames"], face["faces"], face["detected"], face["fallback"],
            face["skipped_frames"], face["skipped_videos"]) == (2, 3, 3, 2, 1, 1, 1)
    # settings, choices, timings, software
    assert "per_video: 8" in html and "sample 32 frames" in html
    assert "<td>align_faces</td>" in html and "42.2" in html and "0:00:42" in html
    assert "<td>python</td>" in html and "<td>pandas</td>" in html


def test_no_banner_on_real_data(inputs, tmp_path):
    html = report.render_report(tmp_path / "r.html", config=CONFIG, synthetic=[], **inputs)
    assert report.BANNER not in html and 'id="synthetic-banner"' not in html
    html = report.render_report(tmp_path / "r.html", config=CONFIG, synthetic=["celebdf"], **inputs)
    assert report.BANNER not in html  # celebdf is synthetic but not used here
    html = report.render_report(tmp_path / "r.html", config=CONFIG, synthetic=True, **inputs)
    assert report.BANNER in html


def test_partial_banner_names_synthetic_datasets(inputs, tmp_path):
    manifest = inputs["manifests"][0]
    other = manifest.parent.parent / "dfdc" / "manifest.csv"
    other.parent.mkdir()
    other.write_text(manifest.read_text().replace("ffpp", "dfdc"))
    html = report.render_report(tmp_path / "r.html", config=CONFIG, synthetic=["dfdc"],
                                **dict(inputs, manifests=[manifest, other]))
    assert report.BANNER not in html and report.PARTIAL_BANNER in html
    assert "Synthetic stand-ins used for: dfdc." in html


def test_schema_from_file_and_escaping(inputs, tmp_path):
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text(yaml.safe_dump(SCHEMA))
    html = report.render_report(tmp_path / "r.html", config={"note": "<script>x</script>"}, synthetic=False,
                                schema_path=schema_path, **inputs)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "benchmarks do" in html


def test_bad_figure_is_an_error(inputs, tmp_path):
    inputs["figures"][0].write_bytes(b"not a png")
    with pytest.raises(DamlError, match="figure2.png"):
        report.render_report(tmp_path / "r.html", config=CONFIG, synthetic=False, **inputs)
    assert not (tmp_path / "r.html").exists()


def test_report_records_where_and_in_what_precision_models_ran(inputs, tmp_path):
    record = {"device": "cpu", "precision": "bf16", "processor": "AMD EPYC", "native_bf16": True,
              "threads": 1, "torch": "2.13.0+cpu"}
    paths = []
    for i, train in enumerate([record, record, {**record, "precision": "fp32", "native_bf16": False}]):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps({"runtime": {"train": train, "evaluate": record}}))
        paths.append(path)
    rows = report.precision_summary(paths)
    assert {"name": "training precision",
            "value": "bf16 on cpu (AMD EPYC; native bf16: True, torch 2.13.0+cpu): 2 model evaluation(s)"} in rows
    assert any(r["value"].startswith("fp32 on cpu") and r["value"].endswith(": 1 model evaluation(s)")
               for r in rows if r["name"] == "training precision")
    html = report.render_report(tmp_path / "r.html", config=CONFIG, synthetic=True, schema=SCHEMA,
                                evaluations=paths, **inputs)
    assert "<td>training precision</td>" in html and "native bf16: False" in html
