"""Meta-training loop (DAML, MAML) and its ERM baseline, with validation, checkpoint and resume.

Description:
    `train_model` loads the source's train and val faces into memory once, then runs
    `iterations` steps of `daml.meta` (one sampled batch of tasks per step), validates on
    the source's val split every `validate_every` iterations (and after the last one) and
    keeps the weights with the best validation AUC (ties: lower loss). The test split is
    never read here. `train_models` trains several methods on one source and seed and
    loads the faces once for all of them.

    Validation scores what the tables report: theta_d, a copy of the current weights
    fine-tuned by the meta-test rule (`daml.adapt`: `adapt.shots` faces per class from the
    source's train split, none sharing an identity with the val videos, `adapt.steps` Adam
    steps at `adapt.lr`, `adapt.bn_mode`), on the training device and precision. The same
    shots serve every validation, so the curve compares like with like. DAML, MAML and ERM
    are selected alike. The score of theta itself is recorded beside it.

    A rolling checkpoint with the whole state (model, optimizer, scheduler, iteration,
    best-so-far, history, every RNG state incl. the task sampler's generator) is written
    atomically every `checkpoint_every` iterations and after the last one; a later call
    with the same settings resumes from it (Snakemake does not declare it as an output, so
    a rerun keeps it). On a CPU with a fixed seed and thread count the resumed run ends
    with the same bytes as an uninterrupted one.

    Learning-rate schedule: Adam at `meta_lr` (paper 1e-3), multiplied by `lr_decay_factor`
    (paper 0.1) every `lr_decay_every` iterations. The paper says "every 150 epochs" but
    trains for 3000 iterations and defines no epoch; read as one iteration it would divide
    the rate by 10 twenty times (to 1e-23), so we make it an iteration count (paper preset:
    1000, i.e. two decays).

References:
    The DAML paper, section 3.1.3 and Algorithm 1; pytorch/examples imagenet (loop shape).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from daml import meta
from daml.adapt import AdaptSettings, InnerLoop, adapted_copy, choose_shots
from daml.batched import choose as choose_batching
from daml.errors import DamlError
from daml.evaluate import predict
from daml.facedata import Faces, describe_split, load_faces
from daml.graphed import EagerRunner, GraphedRunner
from daml.io import atomic_path, write_csv
from daml.metrics import frame_metrics
from daml.models import CONV4, Backbone, MethodSpec, build_model, graph_capturable
from daml.runtime import autocast, runtime, runtime_record
from daml.tasks import Task, TaskSampler, build_tasks

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["iteration", "task", "query_loss", "weight", "meta_loss", "lr"]
# auc, acc, loss: theta_d (fine-tuned, the selection score); theta_*: the weights as they are
VALIDATION_COLUMNS = ["iteration", "auc", "acc", "loss", "theta_auc", "theta_acc", "theta_loss"]
# settings that may change between an interrupted run and its resumption (the batching of
# tasks changes rounding only, like the graph replay)
RESUMABLE_CHANGES = (
    "iterations", "checkpoint_every", "log_every", "threads", "cuda_graph", "task_batching"
)


@dataclass(frozen=True)
class TrainSettings:
    """Settings of the train stage (config section `train`; defaults live in the schema).

    Arguments:
        image_size (int): side of the square face input in pixels.
        iterations (int): meta-iterations (paper: 3000).
        tasks_per_batch (int): tasks per meta-batch (paper: 4).
        support_size (int): faces per support batch, half fake.
        query_size (int): faces per query batch, half fake.
        inner_lr (float): alpha of eq. 2.
        inner_steps (int): inner gradient steps per task.
        first_order (bool): first-order meta-gradient (paper: yes).
        daml_weight (str): "literal" (eq. 5 differentiated as printed) or "detached"
            (sigmoid(L) a constant coefficient); `daml.meta.DAML_OBJECTIVES`.
        loss_reduction (str): "mean" or "sum" of a batch's cross-entropy (eq. 3's L is a
            sum; `daml.meta.loss_fn`).
        meta_lr (float): Adam learning rate beta (paper: 1e-3).
        lr_decay_every (int): iterations between learning-rate decays.
        lr_decay_factor (float): decay multiplier (paper: 0.1).
        pseudo_domains (int): identity groups as tasks when a source has one technique.
        validate_every (int): iterations between validations on the val split.
        checkpoint_every (int): iterations between rolling checkpoints.
        log_every (int): iterations between log lines.
        max_val_faces (int): cap on validation faces (a fixed random subset; 0 = all).
        eval_batch_size (int): batch size of validation forward passes.
        device (str): "auto", "cpu", "cuda" or "cuda:N".
        precision (str): "fp32", "bf16" or "auto" (bf16 where the hardware has it).
        threads (int): CPU threads for torch (0 = torch default).
        cuda_graph (bool): on a CUDA device, replay each iteration as a CUDA graph
            (`daml.graphed`); ignored on a CPU.
        task_batching (str): "loop", "grouped", "vmap" or "auto" (grouped for Conv-4 on a
            CUDA device, else loop): how DAML and MAML run a batch's tasks (`daml.batched`).
    """

    image_size: int
    iterations: int
    tasks_per_batch: int
    support_size: int
    query_size: int
    inner_lr: float
    inner_steps: int
    first_order: bool
    daml_weight: str
    loss_reduction: str
    meta_lr: float
    lr_decay_every: int
    lr_decay_factor: float
    pseudo_domains: int
    validate_every: int
    checkpoint_every: int
    log_every: int
    max_val_faces: int
    eval_batch_size: int
    device: str
    precision: str
    threads: int
    cuda_graph: bool
    task_batching: str


def _fingerprint(shards, source, spec: MethodSpec, seed, settings: TrainSettings, selection) -> str:
    fields = dataclasses.asdict(settings)
    for name in RESUMABLE_CHANGES:
        fields.pop(name)
    return json.dumps(
        {
            "settings": fields,
            "selection": selection,
            "source": source,
            "method": spec.as_dict(),
            "seed": seed,
            "shards": sorted(Path(s).name for s in shards),
        },
        sort_keys=True,
        default=str,
    )


def _rng_states(sampler: TaskSampler) -> dict:
    states = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "sampler": sampler.state_dict(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict, sampler: TaskSampler) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    sampler.load_state_dict(states["sampler"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _validation_subset(faces: Faces, limit: int, seed: int) -> Faces:
    if limit <= 0 or len(faces) <= limit:
        return faces
    rng = np.random.default_rng(seed)
    return faces.subset(np.sort(rng.choice(len(faces), size=limit, replace=False)))


def _score(row: dict) -> tuple[float, float]:
    auc = row["auc"] if not math.isnan(row["auc"]) else -math.inf
    return (auc, -row["loss"])


def validate(model, faces: Faces, device, dtype, batch_size: int) -> dict:
    """AUC, ACC and loss of `model` (eval mode) on `faces`, pooled over all faces."""
    probs = predict(model, faces.images, batch_size, device, dtype)
    metrics = frame_metrics(faces.table["label"].to_numpy(), probs)
    return {"auc": metrics["auc"], "acc": metrics["acc"], "loss": metrics["loss"]}


@dataclass
class Selection:
    """What model selection scores: theta_d, fine-tuned on fixed shots, on the val faces."""

    val: Faces
    shots: Faces
    rule: AdaptSettings
    seed: int
    inner: InnerLoop


def train_model(
    shards: Sequence[str | Path],
    source: dict,
    method: MethodSpec | str,
    seed: int,
    settings: TrainSettings,
    adapt_settings: AdaptSettings,
    out_model: str | Path,
    out_history: str | Path,
    out_validation: str | Path,
    checkpoint_path: str | Path,
    manifest: str | Path | None = None,
    data: SourceData | None = None,
    preprocessing: Mapping | None = None,
) -> dict:
    """Train one model on a source with DAML, MAML or ERM; select on validation.

    Arguments:
        shards: the source faceset's face shards (`shard{N}.npz`).
        source: {"faceset": str, "techniques": [str, ...] or None for all of the face set}.
        method: a `MethodSpec` (algorithm and backbone), or "daml", "maml" or "erm" for
            that algorithm on Conv-4 at `settings.image_size`.
        seed: seed of the initial weights, the task sampler, the validation subset and the
            selection shots.
        settings: `TrainSettings`.
        adapt_settings: the meta-test rule (`daml.adapt.AdaptSettings`) that validation
            applies before scoring; its device, precision and threads are not read.
        out_model: model.pt (best weights, backbone, settings, source, method, seed).
        out_history: history.csv (`iteration,task,query_loss,weight,meta_loss,lr`).
        out_validation: validation.csv (`VALIDATION_COLUMNS`).
        checkpoint_path: rolling checkpoint, resumed from when it matches.
        manifest: the source dataset's manifest.csv, for the counts of an empty split.
        data: the source as `load_source` gives it for this seed, these settings and this
            backbone's image size, when several methods train on it (`train_models`).
        preprocessing: how the source's faces were made (`{"frames": ..., "faces": ...}`,
            the config sections of those stages), stored in model.pt so that `daml detect`
            prepares a new video exactly as the training faces were.

    Returns:
        dict with `best_iteration` and the best validation row.
    """
    spec = as_spec(method, settings)
    seed = int(seed)  # wildcards may arrive as strings
    log.info("training %s (%s on %s), seed %d, on source %s", spec.name, spec.algorithm,
             spec.backbone.name, seed, source.get("faceset"))
    device, dtype = runtime(settings.device, settings.precision, settings.threads)
    # No torch.use_deterministic_algorithms: every CPU op used here is deterministic for a
    # fixed thread count (tests/unit/test_train.py resumes to identical bytes without it),
    # and the call imports torch's compiler stack at every job (benchmarks/README.md, "Jobs").
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if data is None:
        data = load_source(shards, source, seed, settings, adapt_settings, device, manifest,
                           spec.backbone.image_size)
    # each model draws its own batches from the seed, whoever trained on the source before
    sampler = TaskSampler(
        data.tasks, settings.tasks_per_batch, settings.support_size, settings.query_size, seed
    )
    model = build_model(spec.backbone, seed, f"method_settings.{spec.name}")
    model = model.to(device, memory_format=torch.channels_last)
    optimizer, scheduler = _optimizer(model, settings, device)
    rule = _selection_rule(adapt_settings)
    fingerprint = _fingerprint(shards, source, spec, seed, settings, rule)
    state = {"iteration": 0, "history": [], "validation": [], "best": None}
    checkpoint_path = Path(checkpoint_path)
    if checkpoint_path.exists():
        resumed = _resume(
            checkpoint_path, fingerprint, settings, model, optimizer, scheduler, sampler
        )
        state = resumed or state
    chosen = meta.make_method(
        spec.algorithm, settings.daml_weight, settings.inner_lr, settings.inner_steps,
        settings.first_order, settings.loss_reduction,
        _task_batching(spec, model, device, settings),
    )
    runner = _runner(model, optimizer, chosen, data.images, sampler, device, dtype, settings)
    model.train()
    for iteration in tqdm(range(state["iteration"] + 1, settings.iterations + 1),
                          desc=f"train {spec.name}", initial=state["iteration"],
                          total=settings.iterations, mininterval=5):
        runner.step(sampler.sample(), iteration, scheduler.get_last_lr()[0])
        scheduler.step()
        due = _due(iteration, settings)
        if any(due):
            _bookkeeping(state, iteration, due, runner, model, optimizer, scheduler, sampler,
                         data, device, dtype, settings, checkpoint_path, fingerprint)
    if settings.iterations % settings.validate_every != 0 or state["best"] is None:
        # the final validation is not checkpointed, so a longer resumed run does not see it
        _validate_and_select(
            state, settings.iterations, model, data.selection, device, dtype, settings
        )
    best = state["best"]
    _write_outputs(state, spec, seed, source, settings, rule, runtime_record(device, dtype),
                   preprocessing, out_model, out_history, out_validation)
    log.info("best validation at iteration %d: %s", best["iteration"], best["row"])
    return {"best_iteration": best["iteration"], **best["row"]}


def as_spec(method: MethodSpec | str, settings: TrainSettings) -> MethodSpec:
    """A method as a `MethodSpec`; a bare algorithm name is that algorithm on Conv-4."""
    if isinstance(method, MethodSpec):
        return method
    return MethodSpec(method, method, Backbone(CONV4, settings.image_size))


def _optimizer(model, settings: TrainSettings, device):
    """Adam at `meta_lr` with the step decay of the schedule."""
    # a graph replays Adam's update, so its step count must live on the GPU (capturable);
    # the eager GPU path uses the same Adam, so both do the same arithmetic
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.meta_lr, capturable=device.type == "cuda"
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, settings.lr_decay_every, settings.lr_decay_factor
    )
    return optimizer, scheduler


def _due(iteration: int, settings: TrainSettings) -> tuple[bool, bool, bool]:
    """Whether `iteration` is due for (a log line, a validation, a checkpoint)."""
    return (
        iteration % settings.log_every == 0,
        iteration % settings.validate_every == 0,
        iteration % settings.checkpoint_every == 0 or iteration == settings.iterations,
    )


def _bookkeeping(state, iteration, due, runner, model, optimizer, scheduler, sampler, data,
                 device, dtype, settings, checkpoint_path, fingerprint) -> None:
    """What an iteration due (`_due`) for a log line, a validation or a checkpoint does."""
    log_now, validate_now, checkpoint_now = due
    # the graphed runner reads its losses here, and stops on a non-finite one
    # before anything is validated or saved
    record, lr = None, None
    for step_iteration, lr, record in runner.drain():
        for name, loss, weight in zip(record.tasks, record.query_losses, record.weights):
            state["history"].append((step_iteration, name, loss, weight, record.meta_loss, lr))
    if log_now and record is not None:
        log.info("iteration %d: meta-loss %.4f, lr %.2e", iteration, record.meta_loss, lr)
    if validate_now:
        _validate_and_select(state, iteration, model, data.selection, device, dtype, settings)
    if checkpoint_now:
        _save_checkpoint(
            checkpoint_path, fingerprint, state, iteration, model, optimizer, scheduler, sampler
        )


def _write_outputs(state, spec: MethodSpec, seed, source, settings, rule, where, preprocessing,
                   out_model, out_history, out_validation) -> None:
    """model.pt (the selected weights and everything needed to rebuild and judge them),
    history.csv and validation.csv."""
    best = state["best"]
    payload = {
        "state_dict": best["state_dict"],
        "image_size": spec.backbone.image_size,
        "backbone": spec.backbone.as_dict(),
        "settings": dataclasses.asdict(settings),
        "selection": rule,
        "source": source,
        "method": spec.name,
        "algorithm": spec.algorithm,
        "seed": seed,
        "best_iteration": best["iteration"],
        "best_validation": best["row"],
        "runtime": where,
        "preprocessing": None if preprocessing is None else dict(preprocessing),
    }
    write_csv(out_history, pd.DataFrame(state["history"], columns=HISTORY_COLUMNS))
    write_csv(out_validation, pd.DataFrame(state["validation"], columns=VALIDATION_COLUMNS))
    with atomic_path(out_model) as tmp:
        torch.save(payload, tmp)


@dataclass(frozen=True)
class ModelFiles:
    """One method to train on a source, and where its model, logs and checkpoint go."""

    method: MethodSpec | str
    model: Path
    history: Path
    validation: Path
    checkpoint: Path


def train_models(
    shards: Sequence[str | Path],
    source: dict,
    seed: int,
    settings: TrainSettings,
    adapt_settings: AdaptSettings,
    runs: Sequence[ModelFiles],
    manifest: str | Path | None = None,
    preprocessing: Mapping | None = None,
) -> list[dict]:
    """`train_model` for several methods on one source and seed, reading the source once
    per input size.

    Every method trains on the same faces, tasks, validation faces and selection shots (at
    its backbone's input size), with batches drawn from the seed as if it trained alone.
    Returns each `train_model` summary, in the order of `runs`.
    """
    seed = int(seed)
    device, _ = runtime(settings.device, settings.precision, settings.threads)
    specs = [as_spec(run.method, settings) for run in runs]
    summaries: dict[int, dict] = {}
    for size in dict.fromkeys(spec.backbone.image_size for spec in specs):
        data = load_source(shards, source, seed, settings, adapt_settings, device, manifest, size)
        for i, (run, spec) in enumerate(zip(runs, specs)):
            if spec.backbone.image_size == size:
                summaries[i] = train_model(
                    shards, source, spec, seed, settings, adapt_settings, run.model, run.history,
                    run.validation, run.checkpoint, manifest, data, preprocessing,
                )
        del data
    return [summaries[i] for i in range(len(runs))]


@dataclass
class SourceData:
    """What training reads from the source: its train faces, tasks and the selection set."""

    images: torch.Tensor
    tasks: list[Task]
    selection: Selection


def load_source(shards, source, seed, settings, adapt_settings, device, manifest,
                image_size: int | None = None) -> SourceData:
    """The source's train and val faces, its tasks and the shots and val faces of selection,
    at `image_size` pixels (default `settings.image_size`)."""
    image_size = image_size or settings.image_size
    techniques = source.get("techniques")  # None: every fake technique of the face set
    faceset = source.get("faceset")
    train_faces = load_faces(shards, image_size, techniques, ["train"])
    if techniques is None:
        fakes = train_faces.table[train_faces.table["label"] == 1]
        techniques = sorted(fakes["technique"].unique())
    if len(train_faces) == 0:
        raise DamlError(
            f"source {faceset}: no faces in the train split, so there is nothing to train on: "
            + describe_split(shards, manifest, faceset, techniques, "train")
        )
    val_faces = load_faces(shards, image_size, techniques, ["val"])
    if len(val_faces) == 0:
        raise DamlError(
            f"source {faceset}: no faces in the val split; validation selects the model, so "
            "the faces stage must produce val faces: "
            + describe_split(shards, manifest, faceset, techniques, "val")
        )
    shots = choose_shots(
        train_faces.table,
        val_faces.table,
        adapt_settings.shots,
        seed,
        f"source {faceset} (model selection)",
        lambda: describe_split(shards, manifest, faceset, techniques, "train"),
        source.get("leak_rule", "identity"),
    )
    selection = Selection(
        _validation_subset(val_faces, settings.max_val_faces, seed).to(device),
        train_faces.subset(shots).to(device),
        adapt_settings,
        seed,
        InnerLoop.of(dataclasses.asdict(settings)),
    )
    tasks = build_tasks(train_faces.table, techniques, settings.pseudo_domains)
    log.info(
        "source %s: %d train faces, %d val faces, tasks %s",
        faceset,
        len(train_faces),
        len(val_faces),
        [t.name for t in tasks],
    )
    return SourceData(train_faces.images.to(device), tasks, selection)


def _selection_rule(adapt_settings: AdaptSettings) -> dict:
    """The meta-test rule as selection applies it (its device settings are training's)."""
    rule = dataclasses.asdict(adapt_settings)
    for name in ("device", "precision", "threads"):
        rule.pop(name)
    return rule


def _task_batching(spec: MethodSpec, model, device, settings: TrainSettings) -> str:
    """`train.task_batching` for this method, backbone and device (ERM has no tasks' passes)."""
    if spec.algorithm == "erm":
        return "loop"
    batching = choose_batching(settings.task_batching, model, device)
    log.info("%s: task batching %s (train.task_batching=%s)", spec.name, batching,
             settings.task_batching)
    return batching


def _runner(model, optimizer, method, images, sampler, device, dtype, settings):
    """The step runner: CUDA-graph replay on a GPU (unless `cuda_graph` is off or the backbone
    is not known to capture cleanly, `daml.models.graph_capturable`), else eager."""
    if settings.cuda_graph and device.type == "cuda" and graph_capturable(model):
        return GraphedRunner(
            model,
            optimizer,
            method,
            images,
            sampler.tasks_per_batch,
            settings.support_size,
            settings.query_size,
            dtype,
        )
    make_autocast = (lambda: autocast(device, dtype)) if dtype is not None else None
    return EagerRunner(model, optimizer, method, images, make_autocast)


def _validate_and_select(state, iteration, model, selection, device, dtype, settings) -> None:
    theta = validate(model, selection.val, device, dtype, settings.eval_batch_size)
    adapted, _ = adapted_copy(
        model, selection.shots, selection.rule, selection.seed, device, dtype, selection.inner
    )
    row = validate(adapted, selection.val, device, dtype, settings.eval_batch_size)
    del adapted
    model.train()
    state["validation"].append(
        (iteration, row["auc"], row["acc"], row["loss"], theta["auc"], theta["acc"], theta["loss"])
    )
    log.info(
        "validation at iteration %d: fine-tuned AUC %.4f ACC %.4f loss %.4f; as is AUC %.4f",
        iteration,
        row["auc"],
        row["acc"],
        row["loss"],
        theta["auc"],
    )
    if state["best"] is None or _score(row) > _score(state["best"]["row"]):
        weights = {
            k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()
        }
        state["best"] = {"iteration": iteration, "row": row, "state_dict": weights}


def _save_checkpoint(path, fingerprint, state, iteration, model, optimizer, scheduler, sampler):
    checkpoint = {
        "fingerprint": fingerprint,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": state["history"],
        "validation": state["validation"],
        "best": state["best"],
        "rng": _rng_states(sampler),
    }
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _resume(path, fingerprint, settings, model, optimizer, scheduler, sampler) -> dict | None:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a foreign or damaged file: start afresh, it gets replaced
        log.warning("%s: unreadable checkpoint (%s); starting from scratch", path, error)
        return None
    if checkpoint.get("fingerprint") != fingerprint:
        log.warning(
            "%s: checkpoint made with other settings/source/seed; starting from scratch", path
        )
        return None
    if checkpoint["iteration"] > settings.iterations:
        log.warning(
            "%s: checkpoint is at iteration %d, beyond iterations=%d; starting from " "scratch",
            path,
            checkpoint["iteration"],
            settings.iterations,
        )
        return None
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    _set_rng_states(checkpoint["rng"], sampler)
    log.info("%s: resuming after iteration %d", path, checkpoint["iteration"])
    return {
        "iteration": checkpoint["iteration"],
        "history": list(checkpoint["history"]),
        "validation": list(checkpoint["validation"]),
        "best": copy.deepcopy(checkpoint["best"]),
    }
