# Shared helpers: config validation, wildcard constraints, input functions and target lists.
# Parsed once when the workflow starts; rules files only call what is defined here.

import sys
from pathlib import Path

# The workflow's own package, from this checkout: Snakemake may run where it is not installed
# (a conda env holding only snakemake); rule scripts do the same (scripts/workflow_package.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from daml import config as daml_config
from daml.methods import method_specs

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
daml_config.validate(config, SCHEMA)
# each method's algorithm, backbone, input size, weights and label (daml.methods)
METHOD_SPECS = [spec.as_dict() for spec in method_specs(config)]
METHOD_LABELS = {spec["name"]: spec["label"] for spec in METHOD_SPECS}

# how face crops are made from videos (frames and faces stages); travels in every model.pt
PREPROCESSING = {
    "frames": config["frames"],
    "faces": {k: v for k, v in config["faces"].items() if k != "shards"},
}

DATASETS = daml_config.DATASETS
FACESETS = daml_config.FACESETS
faceset_compression = daml_config.faceset_compression
# datasets preprocessed by DeepfakeBench: indexed from its JSON, their crops imported (no
# frame extraction, no face detection); every other dataset goes through both
DEEPFAKEBENCH = daml_config.deepfakebench_inputs(config)
IMPORTED_FACESETS = [f for f in FACESETS if FACESETS[f][0] in DEEPFAKEBENCH]


def one_of(names, none):
    """A wildcard pattern matching exactly `names` (`none`, which no path holds, when empty)."""
    return "|".join(names) or none


wildcard_constraints:
    dataset="|".join(DATASETS),
    faceset="|".join(FACESETS),
    source="|".join(config["sources"]) or "NO_SOURCE",
    seed=r"\d+",
    shard=r"\d{3}",
    table="table1|table2|table3|loto",
    figure="figure2|figure3|figure_shots|forest",


# ---------------------------------------------------------------- data


def is_synthetic(dataset):
    return config["datasets"]["roots"][dataset] is None and dataset not in DEEPFAKEBENCH


def root_of(dataset):
    """The dataset's folder: the user's root (or rgb_dir), or the generated synthetic stand-in."""
    if dataset in DEEPFAKEBENCH:
        return ancient(DEEPFAKEBENCH[dataset]["root"])
    root = config["datasets"]["roots"][dataset]
    if root is None:
        return rules.generate_benchmark.output.root.format(dataset=dataset)
    # a user's dataset is read, never rebuilt: its timestamps must not trigger reruns
    return ancient(root)


def deepfakebench_json(wildcards):
    return ancient(DEEPFAKEBENCH[wildcards.dataset]["json"])


def deepfakebench_source(wildcards):
    """The job's DeepfakeBench input (root, json, workdir) as configured."""
    return DEEPFAKEBENCH[wildcards.dataset]


def dataset_root(wildcards):
    return root_of(wildcards.dataset)


def dataset_roots(wildcards):
    """Every dataset's folder, named by dataset (the data check reads them all)."""
    return {dataset: root_of(dataset) for dataset in DATASETS}


def all_manifests():
    return expand(rules.index_dataset.output.manifest, dataset=DATASETS)


# ---------------------------------------------------------------- faces


def faceset_dataset(faceset):
    return FACESETS[faceset][0]


def shard_ids(faceset):
    return [f"{i:03d}" for i in range(config["faces"]["shards"][faceset])]


def face_shards(faceset):
    """All face-shard outputs (npz, csv, skips) of one face set."""
    return {
        kind: expand(
            getattr(rules.align_faces.output, kind),
            faceset=faceset,
            shard=shard_ids(faceset),
        )
        for kind in ("crops", "index", "skips")
    }


def faceset_shards(wildcards):
    """Input function: the face shards of the job's `faceset`."""
    return face_shards(wildcards.faceset)


def source_preprocessing(wildcards):
    """How the source's faces were made, for its model.pt (`daml detect` repeats it)."""
    if source_faceset(wildcards) in IMPORTED_FACESETS:
        return {**PREPROCESSING, "imported": "deepfakebench"}
    return PREPROCESSING


def source_shards(wildcards):
    """Input function: the face shards of the job's `source`."""
    return face_shards(source_faceset(wildcards))


def faceset_frames_table(wildcards):
    """Input function: the frames table of a DeepfakeBench input's face set."""
    return rules.index_deepfakebench.output.frames.format(
        dataset=faceset_dataset(wildcards.faceset)
    )


def faceset_of(wildcards):
    """The job's face set as (dataset, compression, shards) for the frames stage."""
    faceset = wildcards.faceset
    return {
        "dataset": faceset_dataset(faceset),
        "compression": faceset_compression(faceset),
        "n_shards": config["faces"]["shards"][faceset],
    }


def used_facesets():
    """Face sets that some table row or figure trains or tests on, in a stable order."""
    rows = [e for entries in config["tables"].values() for e in entries]
    fig = config["figures"]
    sources = {e["source"] for e in rows} | {fig["curves_source"], fig["shots_source"]}
    targets = {e["target"] for e in rows} | set(fig["shots_targets"])
    names = {config["sources"][s]["faceset"] for s in sources}
    names |= {config["targets"][t]["faceset"] for t in targets}
    return [f for f in FACESETS if f in names]


# ---------------------------------------------------------------- train, evaluate

# One model per source, method and seed; its evaluation per target face set. A training or
# evaluation job serves every method of `methods` at once (rules train_models, evaluate_models).
TRAIN_FILE = "results/train/{source}/{method}/seed{seed}/{file}"
DETECT_DIR = "results/detect"
EVALUATION_FILE = "results/evaluate/{source}/{faceset}/{method}/seed{seed}/{file}"


def method_files(pattern, file):
    """One file per configured method, the job's other wildcards left open."""
    return expand(pattern, method=config["methods"], file=file, allow_missing=True)


def source_faceset(wildcards):
    return config["sources"][wildcards.source]["faceset"]


def source_domain(wildcards):
    """The job's source as configured: face set, techniques, leak rule."""
    return config["sources"][wildcards.source]


def faceset_manifest(faceset):
    return rules.index_dataset.output.manifest.format(dataset=faceset_dataset(faceset))


def source_manifest(wildcards):
    """The manifest of the source's dataset: counts for a message when a split is empty."""
    return faceset_manifest(source_faceset(wildcards))


def faceset_manifest_of(wildcards):
    """Input function: the manifest of the job's face set's dataset."""
    return faceset_manifest(wildcards.faceset)


def selection_rule():
    """The `adapt` settings as model selection applies them, with one shot draw and not
    `episodes` (so that more episodes rescore the tables without retraining)."""
    return {**config["adapt"], "episodes": 1}


def evaluation_rows(source, faceset):
    """The targets of `faceset` that a table row or the shots figure scores `source` on.

    Returns [{"target", "domain", "shots"}], shots ascending and always with 0 (the model as
    trained): one evaluation job serves them all.
    """
    fig = config["figures"]
    wanted = {}
    for entries in config["tables"].values():
        for e in entries:
            if e["source"] == source:
                wanted.setdefault(e["target"], {0}).add(e["shots"])
    if fig["shots_source"] == source:
        for target in fig["shots_targets"]:
            wanted.setdefault(target, {0}).update(fig["shots"])
    return [
        {"target": t, "domain": config["targets"][t], "shots": sorted(k)}
        for t, k in sorted(wanted.items())
        if config["targets"][t]["faceset"] == faceset
    ]


def evaluation_rows_of(wildcards):
    return evaluation_rows(wildcards.source, wildcards.faceset)


def evaluation_files(file, pairs):
    """metrics.json or predictions.csv of every method and seed for (source, target) pairs."""
    groups = dict.fromkeys((s, config["targets"][t]["faceset"]) for s, t in pairs)
    return [
        EVALUATION_FILE.format(source=s, faceset=f, method=m, seed=seed, file=file)
        for s, f in groups
        for m in config["methods"]
        for seed in config["seeds"]
    ]


def table_evaluations(table, file):
    return evaluation_files(
        file, [(e["source"], e["target"]) for e in config["tables"][table]]
    )


def all_table_metrics():
    """metrics.json of every evaluation a table reads (the report shows their precision)."""
    return sorted({f for t in TABLES for f in table_evaluations(t, "metrics.json")})


def table_metrics(wildcards):
    return table_evaluations(wildcards.table, "metrics.json")


def table_predictions(wildcards):
    return table_evaluations(wildcards.table, "predictions.csv")


def table_entries(wildcards):
    return config["tables"][wildcards.table]


def shots_evaluations():
    fig = config["figures"]
    return evaluation_files(
        "metrics.json", [(fig["shots_source"], t) for t in fig["shots_targets"]]
    )


def curve_histories(file):
    """history.csv or validation.csv of MAML and DAML on the curves source, every seed."""
    methods = [m for m in ("maml", "daml") if m in config["methods"]]
    return expand(
        TRAIN_FILE,
        source=config["figures"]["curves_source"],
        method=methods,
        seed=config["seeds"],
        file=file,
    )


def figure_inputs(wildcards):
    if wildcards.figure == "figure2":
        return curve_histories("history.csv")
    if wildcards.figure == "figure3":
        return curve_histories("validation.csv")
    if wildcards.figure == "forest":
        return [f for t in TABLES for f in table_outputs(t) if f.endswith(".csv")]
    return shots_evaluations()


TABLES = [t for t in ("table1", "table2", "table3", "loto") if config["tables"][t]]
FIGURES = ["figure2", "figure3", "figure_shots", "forest"]


def table_outputs(table):
    """The files of one table (called from the Snakefile, after the rules exist)."""
    return expand(rules.make_table.output, table=table)


def export_shards():
    """The face shards `snakemake export_deepfakebench` writes out, by face set."""
    facesets = config["export_deepfakebench"]["facesets"]
    return {f: face_shards(f)["crops"] for f in FACESETS if f in facesets}


def export_inputs(wildcards):
    """Every exported face set's shards (npz and csv) and its dataset's manifest."""
    shards = export_shards()
    return {
        "crops": [p for paths in shards.values() for p in paths],
        "index": [p for f in shards for p in face_shards(f)["index"]],
        "manifests": sorted({faceset_manifest(f) for f in shards}),
    }


def export_manifests():
    """dataset -> manifest of every exported face set's dataset."""
    return {FACESETS[f][0]: faceset_manifest(f) for f in export_shards()}


def figure_outputs(figure):
    return expand(rules.plot_figure.output, figure=figure)


# ---------------------------------------------------------------- detect


def detect_videos_folder(wildcards):
    videos = config["detect"]["videos"]
    if videos is None:
        raise ValueError(
            "the detect target needs detect.videos: a folder of videos, e.g. "
            "snakemake detect --config detect='{videos: path/to/videos}'"
        )
    return videos
