"""The meta-test of trained models on one face set: fine-tune on shots, score the test split.

Description:
    One job per source, target face set and seed serves the model of every method and every
    table row and shot count that needs them: it loads the face set's test faces and draws
    each row's shots once per episode, then for each model scores it as it is (shots 0, the
    zero-shot companion rows) and, for every target, shot count k > 0 and episode, adapts a
    copy on that episode's k leak-free faces per class of the target's train split
    (`daml.adapt`) and scores it. Every method meets the same draws. A target is a face set,
    or FF++ reals with one technique's fakes (Table 3), so several targets share one face set.

    Scoring runs in eval mode (batch norm with its running statistics, see `daml.models.conv4`)
    under `torch.no_grad`, in batches. Outputs, per model (docs/architecture.md):
    - metrics.json: frame- and video-level metrics of every (target, shots), computed on
      the pooled predictions of each episode (`daml.metrics`) and averaged over episodes
      (each episode's own under `per_episode`), with the model's source, method and seed;
    - predictions.csv: one row per (target, shots, episode, test face), with the face's
      test cluster: the connected group of test videos that share a person or footage
      under the target's leak rule (`daml.tasks.identity_components`), the unit that
      `daml.stats` resamples;
    - models.pt: each adapted model's `adapt` record (the faces used) and, per
      `evaluate.save_weights`, its weights.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from daml.adapt import AdaptSettings, InnerLoop, choose_shots, episode_seed, fine_tune
from daml.errors import DamlError
from daml.facedata import describe_split, load_faces, load_table, select_rows, to_input
from daml.io import atomic_path, write_csv, write_json
from daml.metrics import compute_metrics
from daml.models import inference_copy, load_model, model_backbone
from daml.runtime import autocast, runtime, runtime_record
from daml.tasks import identity_components

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["target", "shots", "episode", "key", "dataset", "technique", "video",
                      "frame", "cluster", "label", "prob"]
FACE_COLUMNS = PREDICTION_COLUMNS[3:-1]  # what a prediction row copies from its face


@dataclass(frozen=True)
class EvaluateSettings:
    """Settings of the evaluate stage (config section `evaluate`).

    Arguments:
        batch_size (int): faces per forward pass.
        device (str): "auto", "cpu", "cuda" or "cuda:N".
        precision (str): "fp32", "bf16" or "auto".
        threads (int): CPU threads for torch (0 = torch default).
        save_weights (str): which fine-tuned weights models.pt keeps: "first" (episode 0 of
            each target and shot count), "all" or "none"; every episode's record is kept.
    """

    batch_size: int
    device: str
    precision: str
    threads: int
    save_weights: str


SAVE_WEIGHTS = ("first", "all", "none")


def keeps_weights(rule: str, episode: int) -> bool:
    """Whether models.pt keeps an episode's fine-tuned weights (`evaluate.save_weights`).

    A timm baseline's weights are 70-80 MB an episode, so keeping every episode of every
    row fills disks at the paper's 10 episodes; one per row is enough to reuse a model.
    """
    if rule not in SAVE_WEIGHTS:
        raise DamlError(f"evaluate.save_weights={rule!r}: use one of {', '.join(SAVE_WEIGHTS)}")
    return rule == "all" or (rule == "first" and episode == 0)


@dataclass(frozen=True)
class Row:
    """One target of a face set and the shot counts it is scored at (0: as trained)."""

    target: str
    domain: Mapping
    shots: tuple[int, ...]


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Probabilities of fake for uint8 (N,S,S,3) faces, in eval mode (`inference_copy`).

    Every forward pass has `batch_size` faces, the last one padded with blank faces, so that
    a face's probability does not depend on which faces share its batch: oneDNN and cuDNN
    choose kernels by batch size, and unpadded batches changed the last bit of 2-3 of 158
    probabilities (bf16 and fp32); the sigmoid, too, runs on the whole batch, since torch's
    vectorised body and scalar tail round differently. So `daml detect` on one video gives
    exactly the evaluate stage's numbers for its faces.

    Returns:
        float64 array (N,).
    """
    model.eval()
    model = inference_copy(model)
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size]
        count = batch.shape[0]
        if count < batch_size:
            batch = torch.cat([batch, batch.new_zeros((batch_size - count, *batch.shape[1:]))])
        with autocast(device, dtype):
            logits = model(to_input(batch.to(device, non_blocking=True)))
        out.append(torch.sigmoid(logits.float())[:count].cpu())
    if not out:
        return np.zeros(0)
    return torch.cat(out).double().numpy()


def target_techniques(target: Mapping) -> list[str] | None:
    """The target's fake techniques (None: all of its faceset)."""
    techniques = target.get("techniques")
    return None if techniques is None else list(techniques)


@dataclass(frozen=True)
class Evaluation:
    """One trained model to score and the files its results go to (module docstring)."""

    method: str
    model: Path
    metrics: Path
    predictions: Path
    models: Path


def evaluate_model(
    model_pt: str | Path,
    shards: Sequence[str | Path],
    rows: Sequence[Row],
    source: str,
    method: str,
    seed: int,
    adapt_settings: AdaptSettings,
    settings: EvaluateSettings,
    out_metrics: str | Path,
    out_predictions: str | Path,
    out_models: str | Path,
    manifest: str | Path | None = None,
) -> dict:
    """`evaluate_models` for one trained model; returns its metrics.json content."""
    files = Evaluation(method, Path(model_pt), Path(out_metrics), Path(out_predictions),
                       Path(out_models))
    [result] = evaluate_models([files], shards, rows, source, seed, adapt_settings, settings,
                               manifest)
    return result


def evaluate_models(
    evaluations: Sequence[Evaluation],
    shards: Sequence[str | Path],
    rows: Sequence[Row],
    source: str,
    seed: int,
    adapt_settings: AdaptSettings,
    settings: EvaluateSettings,
    manifest: str | Path | None = None,
) -> list[dict]:
    """Score trained models of one source and seed on the targets of one face set.

    The face set is read once and each row's shots are drawn once, so every model (one per
    method) is fine-tuned on the same faces and scored on the same test faces.

    Arguments:
        evaluations: the trained models (model.pt of the train stage, same image size) and
            their output files.
        shards: the face set's face shards.
        rows: the targets of this face set and their shot counts.
        source, seed: the models' source (the config's name) and seed, written into
            metrics.json; the seed also draws each row's shots, as model selection does.
        adapt_settings: the meta-test rule (`daml.adapt`; its device and precision fine-tune).
        settings: `EvaluateSettings` (its device and precision score).
        manifest: the face set's dataset manifest.csv, for the counts of an empty split.

    Returns:
        the content of each model's metrics.json, in the order of `evaluations`.
    """
    seed = int(seed)  # wildcards may arrive as strings
    if not rows:
        raise DamlError(
            f"{evaluations[0].model}: no table row or figure evaluates this model on this face set"
        )
    device, dtype = runtime(settings.device, settings.precision, settings.threads)
    trained = {e.method: load_model(e.model, device) for e in evaluations}
    sizes = {e.method: int(trained[e.method][1]["image_size"]) for e in evaluations}
    by_method = {}
    # the face set is loaded once per input size; the shots and test faces depend only on
    # the seed, so models of every size meet the same draws
    for size in dict.fromkeys(sizes.values()):
        plans, test, faces, where = _plan(shards, rows, size, seed, adapt_settings.episodes,
                                          manifest)
        for files in evaluations:
            if sizes[files.method] == size:
                by_method[files.method] = _evaluate_one(
                    files, trained[files.method], plans, test, faces, where, source, seed, rows,
                    adapt_settings, settings, device, dtype)
        del faces
    scored = [by_method[e.method] for e in evaluations]
    # written once every model is scored: a model that fails leaves no other model's files
    for files, result, predictions, models in scored:
        with atomic_path(files.models) as tmp:
            torch.save({"image_size": sizes[files.method], "backbone": result["backbone"],
                        "trained": str(files.model),
                        "preprocessing": trained[files.method][1].get("preprocessing"),
                        "models": models}, tmp)
        write_csv(files.predictions, pd.concat(predictions, ignore_index=True)[PREDICTION_COLUMNS])
        write_json(files.metrics, result)
    return [result for _, result, _, _ in scored]


def _evaluate_one(files, loaded, plans, test, faces, where, source, seed, rows, adapt_settings,
                  settings, device, dtype):
    """One trained model's meta-test on the planned rows: (files, metrics, predictions, models)."""
    model, payload = loaded
    inner = InnerLoop.of(payload["settings"])
    records, predictions, models = _score(
        files.method, model, inner, plans, test, faces, where, seed, adapt_settings,
        settings, device, dtype,
    )
    result = {
        "source": source,
        "method": files.method,
        "seed": seed,
        "backbone": model_backbone(payload).as_dict(),
        "faceset": rows[0].domain.get("faceset"),
        "settings": {
            "adapt": dataclasses.asdict(adapt_settings),
            "evaluate": dataclasses.asdict(settings),
        },
        "runtime": {
            "train": payload.get("runtime"),
            "adapt": runtime_record(*runtime(adapt_settings.device, adapt_settings.precision)),
            "evaluate": runtime_record(device, dtype),
        },
        "evaluations": records,
    }
    return files, result, predictions, models


@dataclass(frozen=True)
class Plan:
    """One scoring of a model: a row's target at a shot count and episode."""

    row: Row
    shots: int
    episode: int
    in_test: np.ndarray  # mask over the face set's test faces
    chosen: np.ndarray | None  # the shots, as positions in the face-set table (None: 0 shots)


def _plan(shards, rows, size, seed, episodes, manifest):
    """Every (row, shots, episode) to score, with its test faces and shots, and the faces
    they need.

    Returns:
        (plans [`Plan`], test faces (with their `cluster`), the loaded faces, {position in
        the face-set table: index into the loaded faces}).
    """
    faceset = rows[0].domain.get("faceset")
    # the face set's train and test rows; each shard's crops are read once, below
    table = load_table(shards, None, ["train", "test"])
    split = table["split"].to_numpy()
    test_rows, train_rows = np.flatnonzero(split == "test"), np.flatnonzero(split == "train")
    test_table = table.iloc[test_rows].reset_index(drop=True)
    train_table = table.iloc[train_rows].reset_index(drop=True)
    clusters = _test_clusters(test_table, rows)
    plans = []
    for row in rows:
        techniques = target_techniques(row.domain)
        in_test = select_rows(test_table, techniques, ["test"])
        if not in_test.any():
            raise DamlError(
                f"target {row.target} ({faceset}, techniques {techniques}) has no test faces, "
                "so there is nothing to score: "
                + describe_split(shards, manifest, faceset, techniques, "test")
            )
        in_train = np.flatnonzero(select_rows(train_table, techniques, ["train"]))
        for shots in row.shots:
            if shots == 0:
                plans.append(Plan(row, 0, 0, in_test, None))
                continue
            for episode in range(episodes):
                picked = choose_shots(
                    train_table.iloc[in_train].reset_index(drop=True),
                    test_table[in_test],
                    shots,
                    episode_seed(seed, episode),
                    f"target {row.target} ({faceset})",
                    lambda t=techniques: describe_split(shards, manifest, faceset, t, "train"),
                    row.domain.get("leak_rule", "identity"),
                )
                chosen = train_rows[in_train[picked]]  # positions in `table`
                plans.append(Plan(row, shots, episode, in_test, chosen))
    # every test face and every chosen shot, read and resized in one pass over the shards
    shots_wanted = {int(p) for plan in plans if plan.chosen is not None for p in plan.chosen}
    wanted = np.array(sorted(set(test_rows.tolist()) | shots_wanted), dtype=np.int64)
    faces = load_faces(shards, size, None, ["train", "test"], wanted)
    where = {int(p): i for i, p in enumerate(wanted)}
    test = faces.subset(np.array([where[int(p)] for p in test_rows], dtype=np.int64))
    test.table["cluster"] = clusters
    return plans, test, faces, where


def _test_clusters(test_table: pd.DataFrame, rows: Sequence[Row]) -> np.ndarray:
    """Per test face, its resampling cluster: videos linked by a shared person or footage.

    The links are those of the targets' leak rule (one rule per face set: a target that
    names another is an error, since its rows could not be resampled together).
    """
    rules = {row.domain.get("leak_rule", "identity") for row in rows}
    if len(rules) > 1:
        raise DamlError(
            f"targets of face set {rows[0].domain.get('faceset')} use different leak rules "
            f"{sorted(rules)}: give them one leak_rule, which also defines their test clusters"
        )
    return identity_components(test_table, rules.pop())


def _score(method, trained, inner, plans, test, faces, where, seed, adapt_settings, settings,
           device, dtype):
    """One model's records, prediction frames and adapted weights, plan by plan."""
    tune_device, tune_dtype = runtime(adapt_settings.device, adapt_settings.precision)
    episodes, predictions, models = {}, [], {}
    for plan in plans:
        row, shots = plan.row, plan.shots
        images = test.images[torch.as_tensor(plan.in_test)]
        if shots == 0:
            probs = predict(trained, images, settings.batch_size, device, dtype)
        else:
            shot_faces = faces.subset(np.array([where[int(p)] for p in plan.chosen],
                                               dtype=np.int64))
            model = copy.deepcopy(trained).to(tune_device)
            losses = fine_tune(
                model,
                shot_faces.images.to(tune_device),
                shot_faces.labels.to(tune_device),
                adapt_settings,
                episode_seed(seed, plan.episode),
                tune_device,
                tune_dtype,
                inner,
            )
            probs = predict(model.to(device), images, settings.batch_size, device, dtype)
            models[f"{row.target}/shots{shots}/episode{plan.episode}"] = {
                **({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
                   if keeps_weights(settings.save_weights, plan.episode) else {}),
                "adapt": {
                    "target": dict(row.domain),
                    "shots": shots,
                    "episode": plan.episode,
                    "keys": [f"{k}#{f}" for k, f in
                             zip(shot_faces.table["key"], shot_faces.table["frame"])],
                    "losses": losses,
                },
            }
        scored = test.table.loc[plan.in_test, FACE_COLUMNS].reset_index(drop=True)
        scored.insert(0, "episode", plan.episode)
        scored.insert(0, "shots", shots)
        scored.insert(0, "target", row.target)
        scored["prob"] = probs
        metrics = compute_metrics(scored)
        episodes.setdefault((row.target, shots), []).append(metrics)
        predictions.append(scored)
        log.info(
            "%s on %s at %d shots, episode %d: frame AUC %.4f ACC %.4f, video AUC %.4f "
            "(%d faces, %d videos)",
            method,
            row.target,
            shots,
            plan.episode,
            metrics["frame"]["auc"],
            metrics["frame"]["acc"],
            metrics["video"]["auc"],
            metrics["frame"]["n"],
            metrics["video"]["n"],
        )
    records = [
        {"target": target, "shots": shots, "episodes": len(runs), **episode_mean(runs),
         "per_episode": runs}
        for (target, shots), runs in episodes.items()
    ]
    return records, predictions, models


def episode_mean(runs: Sequence[dict]) -> dict:
    """Each metric of `compute_metrics` averaged over episodes (NaN if any episode's is)."""
    out = {}
    for level in ("frame", "video"):
        out[level] = {
            name: float(np.mean([run[level][name] for run in runs]))
            for name in runs[0][level]
        }
        out[level]["n"] = runs[0][level]["n"]
    return out
