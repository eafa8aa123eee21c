"""Training, resume, determinism, few-shot adaptation and evaluation on tiny synthetic shards."""

import copy
import inspect
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from daml.adapt import AdaptSettings, InnerLoop, adapted_copy
from daml.data import ffpp
from daml.errors import DamlError
from daml.evaluate import Evaluation, EvaluateSettings, Row, evaluate_model, evaluate_models
from daml.facedata import load_faces, to_input, write_face_shards
from daml.meta import loss_fn
from daml.models import load_model
from daml import train as train_module
from daml.train import ModelFiles, TrainSettings, train_model, train_models

torch.set_num_threads(1)
TECHNIQUES = list(ffpp.TECHNIQUES)
SPLITS = {"train": range(0, 8), "val": range(8, 11), "test": range(11, 14)}


def face(rng, technique, size=24):
    """A noisy smooth 'face' with a technique-specific trace on fakes (separable)."""
    base = rng.uniform(60, 200, 3)
    img = np.ones((size, size, 3)) * base + rng.normal(0, 20, (size, size, 3))
    yy, xx = np.mgrid[:size, :size]
    if technique == "Deepfakes":
        img[::3] += 60
    elif technique == "Face2Face":
        img[:, ::3] += 60
    elif technique == "FaceSwap":
        img[(yy + xx) % 4 == 0] += 60
    elif technique == "NeuralTextures":
        img[size // 2 :, size // 4 : 3 * size // 4] -= 60
    return np.clip(img, 0, 255).astype(np.uint8)


def noise_face(rng, technique, size=128):
    """Uniform noise; a fake adds a technique's periodic grid (wrapping in uint8)."""
    img = rng.integers(40, 216, (size, size, 3), dtype=np.uint8)
    step = {"Deepfakes": (4, 1), "Face2Face": (1, 4), "FaceSwap": (4, 4), "NeuralTextures": (2, 2)}
    if technique in step:
        img[:: step[technique][0], :: step[technique][1]] += 30
    return img


def write_shards(folder, frames=3, n_shards=2, seed=0, splits=SPLITS, make=face):
    """FF++-like face shards: per identity a real video and one fake per technique."""
    rng = np.random.default_rng(seed)

    def faces():
        for split, ids in splits.items():
            for i in ids:
                videos = [("real", f"{i:03d}", 0)] + [
                    (t, f"{i:03d}_{i + 50:03d}", 1) for t in TECHNIQUES
                ]
                for technique, video, label in videos:
                    target, _, source = video.partition("_")
                    for f in range(frames):
                        row = dict(key=f"ffpp/c23/{technique}/{video}", dataset="ffpp",
                                   technique=technique, compression="c23", video=video,
                                   split=split, label=label, target_id=target, source_id=source,
                                   clip_id=target, frame=f, score=0.99, how="detected")
                        yield row, make(rng, technique)

    return write_face_shards(folder, faces(), n_shards)


def settings(**changes):
    base = TrainSettings(
        image_size=16,
        iterations=40,
        tasks_per_batch=4,
        support_size=8,
        query_size=8,
        inner_lr=0.01,
        inner_steps=1,
        first_order=True,
        daml_weight="literal",
        loss_reduction="mean",
        meta_lr=1e-3,
        lr_decay_every=30,
        lr_decay_factor=0.5,
        pseudo_domains=4,
        validate_every=10,
        checkpoint_every=10,
        log_every=10,
        max_val_faces=40,
        eval_batch_size=32,
        device="cpu",
        precision="fp32",
        threads=1,
        cuda_graph=True,
        task_batching="auto",
    )
    return replace(base, **changes)


SOURCE = {"faceset": "ffpp-c23", "techniques": TECHNIQUES}


def adapt_settings(**changes):
    base = AdaptSettings(
        shots=4, episodes=1, rule="finetune", steps=5, lr=1e-4, batch_size=0, bn_mode="source",
        device="cpu", precision="fp32",
        threads=1,
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("faces"))


def run(folder, shards, method="daml", seed=0, source=SOURCE, selection=None, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    out = dict(
        out_model=folder / "model.pt",
        out_history=folder / "history.csv",
        out_validation=folder / "validation.csv",
        checkpoint_path=folder / "checkpoint.pt",
    )
    rule = selection or adapt_settings()
    summary = train_model(shards, source, method, seed, settings(**changes), rule, **out)
    return summary, out


def test_load_faces_filters_and_resizes(shards):
    faces = load_faces(shards, 16, ["Deepfakes"], ["val"])
    assert faces.images.shape == (3 * 3 * 2, 16, 16, 3) and faces.images.dtype == torch.uint8
    assert set(faces.table.technique) == {"real", "Deepfakes"} and set(faces.table.split) == {"val"}


@pytest.mark.parametrize("method", ["daml", "maml", "erm"])
def test_short_training_separates_synthetic_fakes(tmp_path, shards, method):
    summary, out = run(tmp_path / method, shards, method=method, iterations=60)
    assert summary["auc"] > 0.9
    history = pd.read_csv(out["out_history"])
    assert list(history.columns) == ["iteration", "task", "query_loss", "weight", "meta_loss", "lr"]
    validation = pd.read_csv(out["out_validation"])
    assert list(validation.columns) == [
        "iteration", "auc", "acc", "loss", "theta_auc", "theta_acc", "theta_loss"
    ]
    assert validation.iteration.tolist() == [10, 20, 30, 40, 50, 60]
    if method == "erm":
        assert (history.task == "pooled").all() and (history.weight == 1).all()
        assert len(history) == 60
    else:
        assert len(history) == 60 * 4 and set(history.task) == set(TECHNIQUES)
        first = history[history.iteration == 1]
        losses = first.query_loss.to_numpy()
        s = 1 / (1 + np.exp(-losses))
        # the recorded weight is the one the gradient applies: d(L s)/dL = s + L s (1 - s)
        weights = s + losses * s * (1 - s) if method == "daml" else np.ones(4)
        np.testing.assert_allclose(first.weight, weights, rtol=1e-5)
        objective = (losses * s).sum() if method == "daml" else losses.sum()
        np.testing.assert_allclose(first.meta_loss, objective, rtol=1e-5)
    # decay every 30 iterations: iterations 1-30 at meta_lr, 31-60 at half of it
    lr = history.groupby("iteration").lr.first()
    assert lr[30] == pytest.approx(1e-3) and lr[31] == pytest.approx(5e-4) == lr[60]
    _, payload = load_model(out["out_model"])
    best = validation.loc[validation.auc.idxmax()]
    assert payload["method"] == method and payload["source"] == SOURCE
    assert payload["best_validation"]["auc"] == pytest.approx(validation.auc.max())
    assert payload["best_iteration"] in validation.iteration[validation.auc == best.auc].tolist()


def files_equal(a, b, name):
    return a[name].read_bytes() == b[name].read_bytes()


def test_resume_equals_uninterrupted(tmp_path, shards):
    _, whole = run(tmp_path / "whole", shards, iterations=30, validate_every=10, checkpoint_every=7)
    # interrupted: first 16 iterations (a checkpoint at 14 and at 16), then continued to 30
    _, part = run(tmp_path / "part", shards, iterations=16, validate_every=10, checkpoint_every=7)
    _, resumed = run(
        tmp_path / "part", shards, iterations=30, validate_every=10, checkpoint_every=7
    )
    assert files_equal(whole, resumed, "out_history") and files_equal(
        whole, resumed, "out_validation"
    )
    a = torch.load(whole["out_model"], weights_only=False)["state_dict"]
    b = torch.load(resumed["out_model"], weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_an_exception(tmp_path, shards, monkeypatch):
    from daml import meta

    _, whole = run(tmp_path / "whole", shards, iterations=20, checkpoint_every=5)
    real_step = meta.step

    def failing(*args, **kwargs):
        if inspect.signature(real_step).bind(*args, **kwargs).arguments["iteration"] == 13:
            raise RuntimeError("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(meta, "step", failing)
    with pytest.raises(RuntimeError):
        run(tmp_path / "crash", shards, iterations=20, checkpoint_every=5)
    assert not (tmp_path / "crash" / "model.pt").exists()
    assert torch.load(tmp_path / "crash" / "checkpoint.pt", weights_only=False)["iteration"] == 10
    monkeypatch.setattr(meta, "step", real_step)
    _, resumed = run(tmp_path / "crash", shards, iterations=20, checkpoint_every=5)
    assert files_equal(whole, resumed, "out_history") and files_equal(
        whole, resumed, "out_validation"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_with_graph_replay_matches_eager_and_resumes(tmp_path, shards):
    # exact fp32 (see tests/unit/test_graphed.py, exact_cuda): the runners are compared
    backends = torch.backends
    saved = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32
    backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = False
    backends.cudnn.deterministic = True
    gpu = dict(
        device="cuda",
        precision="fp32",
        iterations=20,
        checkpoint_every=5,
        lr_decay_every=8,  # a decay after capture: the graph must follow the scheduler
    )
    try:
        _, eager = run(tmp_path / "eager", shards, cuda_graph=False, **gpu)
        _, graphed = run(tmp_path / "graphed", shards, cuda_graph=True, **gpu)
        # stopped after 10 iterations, then continued to 20 from the checkpoint
        run(tmp_path / "resumed", shards, cuda_graph=True, **{**gpu, "iterations": 10})
        _, resumed = run(tmp_path / "resumed", shards, cuda_graph=True, **gpu)
    finally:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = saved
        backends.cudnn.deterministic = False
    a, b, c = (pd.read_csv(x["out_history"]) for x in (eager, graphed, resumed))
    assert a[["iteration", "task", "lr"]].equals(b[["iteration", "task", "lr"]])
    assert c[["iteration", "task", "lr"]].equals(b[["iteration", "task", "lr"]])
    # Identical up to the first checkpoint. Later the eager run may pick other cuDNN
    # kernels (the graph keeps those of its capture), and in fp32 these gradients are sums
    # of cancelling terms: on an H200 two correct meta-gradients differed by 1e-2 in fp32
    # and 2e-15 in float64 (benchmarks/bench_meta.py); seen here: equal losses up to
    # iteration 9, at most 0.003 apart by iteration 20. Broken bookkeeping, stale indices
    # or lost state on resume would be far outside 0.02.
    early = b.iteration <= 5
    for other in (a, c):
        np.testing.assert_allclose(
            other.query_loss[early], b.query_loss[early], rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(other.query_loss, b.query_loss, rtol=0, atol=0.02)
    assert pd.read_csv(resumed["out_validation"]).iteration.tolist() == [10, 20]


@pytest.mark.parametrize("batching", ["grouped", "vmap"])
def test_batched_tasks_train_like_the_loop_and_resume_its_checkpoint(tmp_path, shards, batching):
    """`train.task_batching` changes rounding only: same batches and records, and a
    checkpoint of the loop resumes under it (the fingerprint leaves it out)."""
    _, loop = run(tmp_path / "loop", shards, iterations=10, checkpoint_every=5)
    _, batched = run(tmp_path / "batched", shards, iterations=10, task_batching=batching)
    run(tmp_path / "resumed", shards, iterations=5, task_batching="loop")
    _, resumed = run(tmp_path / "resumed", shards, iterations=10, task_batching=batching)
    a, b, c = (pd.read_csv(x["out_history"]) for x in (loop, batched, resumed))
    first = a.iteration == 1
    for other in (b, c):
        assert other[["iteration", "task", "lr"]].equals(a[["iteration", "task", "lr"]])
        # the same weights give the same losses and DAML weights; after Adam steps the runs
        # part within fp32 noise, which these tiny batch-normed nets amplify (float64 equality
        # is tests/unit/test_meta.py's; vmap sums in another order than the loop, up to
        # 0.02 apart by iteration 10, grouped within 1e-6 on a CPU)
        np.testing.assert_allclose(other.query_loss[first], a.query_loss[first], rtol=1e-5)
        np.testing.assert_allclose(other.weight[first], a.weight[first], rtol=1e-5)
        np.testing.assert_allclose(other.query_loss, a.query_loss, rtol=0, atol=0.05)
    # the resumed run continued the loop's first five iterations rather than starting afresh
    assert c[c.iteration <= 5].equals(a[a.iteration <= 5])


def test_checkpoint_of_other_settings_is_not_used(tmp_path, shards):
    _, first = run(tmp_path / "a", shards, iterations=10)
    _, second = run(tmp_path / "a", shards, iterations=10, inner_lr=0.02)
    _, fresh = run(tmp_path / "b", shards, iterations=10, inner_lr=0.02)
    assert files_equal(second, fresh, "out_history")


def test_same_seed_same_weights_other_seed_differs(tmp_path, shards):
    _, a = run(tmp_path / "a", shards, iterations=10, seed=3)
    _, b = run(tmp_path / "b", shards, iterations=10, seed=3)
    _, c = run(tmp_path / "c", shards, iterations=10, seed=4)
    wa, wb, wc = (torch.load(x["out_model"], weights_only=False)["state_dict"] for x in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["head.weight"], wc["head.weight"])
    assert files_equal(a, b, "out_history")


def test_methods_of_one_job_read_the_source_once_and_train_as_alone(tmp_path, shards, monkeypatch):
    reads = []
    monkeypatch.setattr(train_module, "load_faces", lambda *a, **k: reads.append(a) or load_faces(*a, **k))
    methods = ("daml", "maml", "erm")
    files = [ModelFiles(m, *(tmp_path / m / n for n in ("model.pt", "history.csv", "validation.csv",
                                                       "checkpoint.pt"))) for m in methods]
    for f in files:
        f.model.parent.mkdir()
    train_models(shards, SOURCE, 0, settings(iterations=8, validate_every=4), adapt_settings(), files)
    assert len(reads) == 2  # the train and the val split, once for the three methods
    for method, f in zip(methods, files):
        _, alone = run(tmp_path / f"alone-{method}", shards, method=method, iterations=8, validate_every=4)
        a = torch.load(alone["out_model"], weights_only=False)["state_dict"]
        b = torch.load(f.model, weights_only=False)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), method
        for out, mine in (("out_history", f.history), ("out_validation", f.validation)):
            assert alone[out].read_text() == mine.read_text(), (method, out)


def test_nan_loss_stops_without_a_model(tmp_path, shards):
    with pytest.raises(DamlError, match=r"iteration 1 in task"):
        run(tmp_path / "nan", shards, iterations=5, inner_lr=1e38)
    assert not (tmp_path / "nan" / "model.pt").exists()


def test_single_technique_source_trains_on_pseudo_domains(tmp_path, shards):
    source = {"faceset": "ffpp-c23", "techniques": ["FaceSwap"]}
    _, out = run(
        tmp_path / "one", shards, source=source, iterations=4, pseudo_domains=3, validate_every=2
    )
    tasks = set(pd.read_csv(out["out_history"]).task)
    assert tasks <= {"FaceSwap#0", "FaceSwap#1", "FaceSwap#2"} and len(tasks) >= 2


def test_source_without_techniques_uses_every_technique_of_the_face_set(tmp_path, shards):
    source = {"faceset": "ffpp-c23", "techniques": None}
    _, out = run(tmp_path / "all", shards, source=source, iterations=4, validate_every=2)
    assert set(pd.read_csv(out["out_history"]).task) == set(TECHNIQUES)


def test_meta_test_scores_theta_d_where_theta_alone_ranks_fakes_below_reals(tmp_path):
    """Meta-learned weights are good after adaptation, not before: select and report theta_d.

    At 128 px on noise faces, a few DAML iterations give weights theta that rank every fake
    below every real (validation AUC 0), while theta_d, the same weights after the meta-test
    fine-tuning (20 Adam steps at 1e-4 on 4 faces per class), ranks them all correctly.
    Selection must score theta_d, and the tables read the fine-tuned model's evaluation.
    """
    splits = {"train": range(0, 6), "val": range(6, 10), "test": range(10, 14)}
    shards = write_shards(tmp_path, frames=4, n_shards=1, splits=splits, make=noise_face)
    rule = adapt_settings(steps=20)
    summary, out = run(
        tmp_path / "train", shards, selection=rule, image_size=128, iterations=8,
        validate_every=8, checkpoint_every=8, max_val_faces=0, lr_decay_every=1000,
    )
    validation = pd.read_csv(out["out_validation"]).iloc[-1]
    assert validation.theta_auc < 0.3  # theta alone: fakes below reals
    assert validation.auc > 0.9  # theta_d
    _, payload = load_model(out["out_model"])
    assert payload["best_validation"]["auc"] == pytest.approx(validation.auc) == summary["auc"]
    assert payload["selection"]["steps"] == 20 and payload["selection"]["bn_mode"] == "source"

    # the tables' main row reads the fine-tuned evaluation, the companion the trained model
    scores = evaluate(out["out_model"], shards, tmp_path / "eval", "ffpp-c23", SOURCE, (0, 4), rule)
    assert scores[0] < 0.3 and scores[4] > 0.8, scores


def evaluate(model_pt, shards, folder, target, domain, shots, rule=None, batch_size=16, **changes):
    """Run the evaluate stage on one target; frame AUC by shot count."""
    folder.mkdir(parents=True, exist_ok=True)
    result = evaluate_model(
        model_pt, shards, [Row(target, domain, tuple(shots))], "src", "daml", 0,
        rule or adapt_settings(),
        EvaluateSettings(batch_size=batch_size, device="cpu", precision="fp32", threads=1,
                     save_weights="first"),
        folder / "metrics.json", folder / "predictions.csv", folder / "models.pt", **changes,
    )
    return {r["shots"]: r["frame"]["auc"] for r in result["evaluations"]}


NT = {"faceset": "ffpp-c23", "techniques": ["NeuralTextures"], "leak_rule": "identity"}


def test_evaluate_fine_tunes_on_leak_free_shots_and_scores_both(tmp_path, shards):
    _, out = run(tmp_path / "train", shards, iterations=30)
    scores = evaluate(out["out_model"], shards, tmp_path / "eval", "ffpp-c23-nt", NT, (0, 4))
    assert scores[4] > 0.8
    models = torch.load(tmp_path / "eval" / "models.pt", weights_only=False)["models"]
    record = models["ffpp-c23-nt/shots4/episode0"]["adapt"]
    train_keys = set(load_faces(shards, 16, None, ["train"]).table.key)
    keys = [k.split("#")[0] for k in record["keys"]]
    assert len(keys) == 8 and set(keys) <= train_keys and len(set(keys)) == 8
    assert {k.split("/")[2] for k in keys} == {"NeuralTextures", "real"}
    assert record["shots"] == 4 and len(record["losses"]) == 5
    trained, _ = load_model(out["out_model"])
    assert not torch.equal(trained.head.weight, models["ffpp-c23-nt/shots4/episode0"]["state_dict"]["head.weight"])
    assert "ffpp-c23-nt/shots0" not in models  # shots 0 is the trained model itself

    predictions = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    assert list(predictions.columns) == [
        "target", "shots", "episode", "key", "dataset", "technique", "video", "frame",
        "cluster", "label", "prob",
    ]
    # clusters: a real and the fake made of it share a person, so they are resampled together
    clusters = predictions[predictions.shots == 0].groupby("cluster").video.unique()
    assert sorted(map(sorted, clusters)) == [[f"{i:03d}", f"{i:03d}_{i + 50:03d}"] for i in SPLITS["test"]]
    assert (predictions.groupby("shots").size() == 3 * 3 * 2).all()  # 3 test ids x 3 frames x 2
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert (metrics["source"], metrics["method"], metrics["seed"]) == ("src", "daml", 0)
    by_shots = {r["shots"]: r for r in metrics["evaluations"]}
    assert by_shots[4]["frame"]["n"] == 18 and by_shots[4]["video"]["n"] == 6
    # eval mode: a face's score does not depend on the other faces in its batch
    one = evaluate(out["out_model"], shards, tmp_path / "one", "ffpp-c23-nt", NT, (0, 4), batch_size=1)
    again = pd.read_csv(tmp_path / "one" / "predictions.csv")
    np.testing.assert_allclose(again.prob, predictions.prob, atol=1e-5)
    assert one == pytest.approx(scores)


def test_one_job_scores_every_target_of_the_face_set_as_single_jobs_would(tmp_path, shards):
    _, out = run(tmp_path / "train", shards, iterations=10)
    df = {"faceset": "ffpp-c23", "techniques": ["Deepfakes"], "leak_rule": "identity"}
    rows = [Row("df", df, (0, 4)), Row("nt", NT, (0, 2, 4))]
    evaluate_model(
        out["out_model"], shards, rows, "src", "daml", 0, adapt_settings(),
        EvaluateSettings(batch_size=16, device="cpu", precision="fp32", threads=1,
                     save_weights="first"),
        tmp_path / "m.json", tmp_path / "p.csv", tmp_path / "m.pt",
    )
    together = pd.read_csv(tmp_path / "p.csv")
    for target, domain, shots in (("df", df, (0, 4)), ("nt", NT, (0, 2, 4))):
        evaluate(out["out_model"], shards, tmp_path / target, target, domain, shots)
        alone = pd.read_csv(tmp_path / target / "predictions.csv")
        mine = together[together.target == target].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)


def test_one_job_scores_every_method_on_the_same_shots_as_single_jobs_would(tmp_path, shards):
    trained = {m: run(tmp_path / m, shards, method=m, iterations=10)[1]["out_model"] for m in ("daml", "erm")}
    rows = [Row("nt", NT, (0, 4))]
    scoring = EvaluateSettings(batch_size=16, device="cpu", precision="fp32", threads=1,
                     save_weights="first")
    jobs = [Evaluation(m, trained[m], tmp_path / f"{m}.json", tmp_path / f"{m}.csv", tmp_path / f"{m}.pt")
            for m in ("daml", "erm")]
    results = evaluate_models(jobs, shards, rows, "src", 0, adapt_settings(), scoring)
    assert [r["method"] for r in results] == ["daml", "erm"]
    keys = []
    for method in ("daml", "erm"):
        alone = tmp_path / f"alone-{method}"
        evaluate(trained[method], shards, alone, "nt", NT, (0, 4))
        together = pd.read_csv(tmp_path / f"{method}.csv")
        pd.testing.assert_frame_equal(together, pd.read_csv(alone / "predictions.csv"))
        keys.append(torch.load(tmp_path / f"{method}.pt", weights_only=False)["models"]["nt/shots4/episode0"]["adapt"]["keys"])
    assert keys[0] == keys[1]  # both methods fine-tuned on the same faces
    assert not pd.read_csv(tmp_path / "daml.csv").prob.equals(pd.read_csv(tmp_path / "erm.csv").prob)

    other = run(tmp_path / "big", shards, method="maml", iterations=2, image_size=24)[1]["out_model"]
    mixed = [jobs[0], Evaluation("maml", other, tmp_path / "x.json", tmp_path / "x.csv", tmp_path / "x.pt")]
    # models of another input size join the job: the face set is loaded at each size, and
    # every model still meets the same shots and gives what it gives alone
    before = pd.read_csv(jobs[0].predictions)
    evaluate_models(mixed, shards, rows, "src", 0, adapt_settings(), scoring)
    pd.testing.assert_frame_equal(pd.read_csv(jobs[0].predictions), before)
    tuned = torch.load(tmp_path / "x.pt", weights_only=False)
    assert tuned["image_size"] == 24
    assert tuned["models"]["nt/shots4/episode0"]["adapt"]["keys"] == keys[0]


def test_episodes_draw_other_shots_the_same_for_every_method_and_average(tmp_path, shards):
    trained = {m: run(tmp_path / m, shards, method=m, iterations=6)[1]["out_model"] for m in ("daml", "erm")}
    scoring = EvaluateSettings(batch_size=16, device="cpu", precision="fp32", threads=1,
                     save_weights="first")
    jobs = [Evaluation(m, trained[m], tmp_path / f"{m}.json", tmp_path / f"{m}.csv", tmp_path / f"{m}.pt")
            for m in ("daml", "erm")]
    evaluate_models(jobs, shards, [Row("nt", NT, (0, 2))], "src", 0, adapt_settings(episodes=3), scoring)
    keys = {}
    for m in ("daml", "erm"):
        models = torch.load(tmp_path / f"{m}.pt", weights_only=False)["models"]
        keys[m] = [models[f"nt/shots2/episode{e}"]["adapt"]["keys"] for e in range(3)]
        # evaluate.save_weights "first": the weights of episode 0 only, every episode's record
        assert [("state_dict" in models[f"nt/shots2/episode{e}"]) for e in range(3)] == [True, False, False]
        predictions = pd.read_csv(tmp_path / f"{m}.csv")
        assert sorted(predictions.groupby("shots").episode.unique()[2]) == [0, 1, 2]
        assert list(predictions.groupby("shots").episode.unique()[0]) == [0]
        record = next(r for r in json.loads((tmp_path / f"{m}.json").read_text())["evaluations"]
                      if r["shots"] == 2)
        aucs = [run["frame"]["auc"] for run in record["per_episode"]]
        assert record["episodes"] == 3 and record["frame"]["auc"] == pytest.approx(np.mean(aucs))
        for e, auc in enumerate(aucs):  # each episode's metric is its own predictions'
            part = predictions[(predictions.shots == 2) & (predictions.episode == e)]
            assert auc == pytest.approx(roc_auc_score(part.label, part.prob))
    assert keys["daml"] == keys["erm"]  # paired: the same draws for every method
    assert len({tuple(k) for k in keys["daml"]}) == 3  # independent draws


def test_inner_rule_is_the_inner_loop_of_training(tmp_path, shards):
    """adapt.rule inner: eq. 2 with the model's inner_lr and steps, as meta.adapt computes it."""
    _, out = run(tmp_path / "train", shards, iterations=6, inner_lr=0.05, inner_steps=2)
    model, payload = load_model(out["out_model"])
    faces = load_faces(shards, 16, None, ["train"]).subset(np.arange(0, 48, 4))
    tuned, losses = adapted_copy(model, faces, adapt_settings(rule="inner"), 0,
                                 torch.device("cpu"), None, InnerLoop.of(payload["settings"]))
    assert len(losses) == 2 and not tuned.training
    # by hand: two plain gradient steps of the mean loss in train-mode batch norm
    reference = copy.deepcopy(model).train()
    for _ in range(2):
        reference.zero_grad()
        loss_fn(reference(to_input(faces.images)), faces.labels).backward()
        with torch.no_grad():
            for p in reference.parameters():
                p -= 0.05 * p.grad
    for (name, a), b in zip(tuned.named_parameters(), reference.parameters()):
        assert torch.allclose(a, b, atol=1e-5), name
    # running statistics: moved once, by the pass at theta, as in meta-training
    first = tuned.features[1]
    with torch.no_grad():
        h = model.features[0](to_input(faces.images))
    expected = 0.9 * model.features[1].running_mean + 0.1 * h.mean((0, 2, 3))
    assert torch.allclose(first.running_mean, expected, atol=1e-5)
    with pytest.raises(DamlError, match="inner loop"):
        adapted_copy(model, faces, adapt_settings(rule="inner"), 0, torch.device("cpu"), None)


@pytest.mark.parametrize("bn_mode", ["source", "shots", "batch"])
def test_fine_tuning_batch_norm_modes(tmp_path, shards, bn_mode):
    _, out = run(tmp_path / "train", shards, iterations=10)
    model, _ = load_model(out["out_model"])
    faces = load_faces(shards, 16, None, ["train"]).subset(np.arange(12))
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    tuned, losses = adapted_copy(
        model, faces, adapt_settings(bn_mode=bn_mode, steps=3), 0, torch.device("cpu"), None
    )
    assert len(losses) == 3 and not tuned.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # a copy
    first = tuned.features[1]
    with torch.no_grad():
        h = model.features[0](to_input(faces.images))
    if bn_mode == "source":  # the statistics of training are kept
        assert torch.equal(first.running_mean, before["features.1.running_mean"])
    elif bn_mode == "shots":  # exactly the shots' statistics (the first layer's input is fixed)
        assert torch.allclose(first.running_mean, h.mean((0, 2, 3)), atol=1e-5)
        assert torch.allclose(first.running_var, h.var((0, 2, 3), unbiased=True), rtol=1e-4)
    else:  # moved towards the shots at every step
        old = before["features.1.running_mean"]
        assert not torch.equal(first.running_mean, old)
        assert torch.allclose(
            first.running_mean, 0.9**3 * old + (1 - 0.9**3) * h.mean((0, 2, 3)), atol=1e-4
        )


def test_too_few_leak_free_shots_name_the_counts(tmp_path, shards):
    _, out = run(tmp_path / "train", shards, iterations=4)
    target = {"faceset": "ffpp-c23", "techniques": ["FaceSwap"]}
    with pytest.raises(DamlError, match=r"24 fake faces \(8 videos\).*fewer than shots=30"):
        evaluate(out["out_model"], shards, tmp_path / "e", "fs", target, (0, 30))
    assert not list((tmp_path / "e").iterdir())  # nothing half-written


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_adapt_evaluate_on_cuda_as_configured_by_default(tmp_path, shards):
    """The GPU path end to end with the defaults there: graph replay, bf16, GPU fine-tuning."""
    _, out = run(tmp_path / "train", shards, iterations=30, device="auto", precision="auto")
    records, probs = {}, {}
    for device in ("cpu", "cuda"):
        folder = tmp_path / f"eval-{device}"
        folder.mkdir()
        result = evaluate_model(
            out["out_model"], shards, [Row("nt", NT, (0, 4))], "src", "daml", 0,
            adapt_settings(device=device, precision="auto"),
            EvaluateSettings(batch_size=16, device=device, precision="fp32", threads=1,
                     save_weights="first"),
            folder / "metrics.json", folder / "predictions.csv", folder / "models.pt",
        )
        assert all(r["frame"]["auc"] > 0.8 for r in result["evaluations"] if r["shots"] == 4)
        records[device] = torch.load(folder / "models.pt", weights_only=False)["models"]["nt/shots4/episode0"]
        predictions = pd.read_csv(folder / "predictions.csv")
        probs[device] = predictions[predictions.shots == 0].prob.to_numpy()
    # the shots are drawn on the host: the same faces whichever device fine-tunes
    assert records["cpu"]["adapt"]["keys"] == records["cuda"]["adapt"]["keys"]
    # one trained model, two devices: the same predictions up to TF32 convolutions
    np.testing.assert_allclose(probs["cuda"], probs["cpu"], atol=5e-3)


def test_save_weights_rule_names_its_key():
    from daml.evaluate import keeps_weights

    assert [keeps_weights("first", e) for e in range(3)] == [True, False, False]
    assert all(keeps_weights("all", e) for e in range(3))
    assert not any(keeps_weights("none", e) for e in range(3))
    with pytest.raises(DamlError, match="evaluate.save_weights='some'"):
        keeps_weights("some", 0)
