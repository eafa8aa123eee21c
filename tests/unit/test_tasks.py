"""Task building and sampling, pseudo-domains, k-shot draws."""

import numpy as np
import pandas as pd
import pytest

from daml.errors import DamlError
from daml.tasks import TaskSampler, build_tasks, identity_of, sample_shots

TECHNIQUES = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]


def table(techniques=TECHNIQUES, identities=12, frames=3):
    rows = []
    for i in range(identities):
        for f in range(frames):
            rows.append(
                dict(
                    key=f"ffpp/c23/real/{i:03d}",
                    technique="real",
                    video=f"{i:03d}",
                    label=0,
                    frame=f,
                )
            )
            for t in techniques:
                video = f"{i:03d}_{(i + 1) % identities:03d}"
                rows.append(
                    dict(key=f"ffpp/c23/{t}/{video}", technique=t, video=video, label=1, frame=f)
                )
    return pd.DataFrame(rows)


def test_one_task_per_technique_with_shared_reals():
    t = table()
    tasks = build_tasks(t, TECHNIQUES, pseudo_domains=4)  # ignored: several techniques
    assert [task.name for task in tasks] == TECHNIQUES
    for task in tasks:
        assert (t.loc[task.fake, "technique"] == task.name).all()
        assert (t.loc[task.fake, "label"] == 1).all() and (t.loc[task.real, "label"] == 0).all()
        assert len(task.real) == 36


def test_batches_are_balanced_and_from_their_task():
    t = table()
    sampler = TaskSampler(build_tasks(t, TECHNIQUES, 1), 4, 6, 8, seed=0)
    for _ in range(5):
        batch = sampler.sample()
        assert sorted(b.name for b in batch) == sorted(TECHNIQUES)  # without replacement
        for b in batch:
            for index, labels, size in (
                (b.support, b.support_labels, 6),
                (b.query, b.query_labels, 8),
            ):
                assert len(index) == size and labels.sum() == size // 2
                rows = t.iloc[index.numpy()]
                assert (rows["label"].to_numpy() == labels.numpy()).all()
                assert set(rows.loc[rows.label == 1, "technique"]) == {b.name}
                assert len(set(index.tolist())) == size  # no duplicates within a draw


def test_fewer_tasks_than_batch_draws_with_replacement():
    t = table(TECHNIQUES[:3])
    sampler = TaskSampler(build_tasks(t, TECHNIQUES[:3], 1), 4, 4, 4, seed=1)
    names = [b.name for b in sampler.sample()]
    assert len(names) == 4 and set(names) <= set(TECHNIQUES[:3])


def test_single_technique_pseudo_domains_are_disjoint_by_identity():
    t = table(["Deepfakes"], identities=30)
    tasks = build_tasks(t, ["Deepfakes"], pseudo_domains=3)
    assert len(tasks) == 3 and all(task.name.startswith("Deepfakes#") for task in tasks)
    seen = []
    for task in tasks:
        ids = {identity_of(v) for v in t.loc[np.concatenate([task.fake, task.real]), "video"]}
        seen.append(ids)
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    fakes = np.concatenate([task.fake for task in tasks])
    assert sorted(fakes) == sorted(np.flatnonzero(t.label == 1))  # every fake used once


def test_missing_technique_names_the_fix():
    with pytest.raises(DamlError, match="techniques"):
        build_tasks(table(["Deepfakes"]), ["FaceSwap"], 1)


def test_sampler_state_round_trip():
    tasks = build_tasks(table(), TECHNIQUES, 1)
    a = TaskSampler(tasks, 4, 4, 4, seed=5)
    a.sample()
    state = a.state_dict()
    expected = a.sample()
    b = TaskSampler(tasks, 4, 4, 4, seed=99)
    b.load_state_dict(state)
    got = b.sample()
    assert [x.name for x in got] == [x.name for x in expected]
    assert all(
        (x.support == y.support).all() and (x.query == y.query).all() for x, y in zip(got, expected)
    )


def test_sample_shots_k_per_class_from_distinct_videos():
    t = table(["Deepfakes"], identities=10, frames=5)
    picked = sample_shots(t, 4, seed=0)
    rows = t.iloc[picked]
    assert (rows.label == 1).sum() == 4 and (rows.label == 0).sum() == 4
    assert rows.groupby("label")["key"].nunique().tolist() == [4, 4]
    assert (sample_shots(t, 4, seed=0) == picked).all()
    assert not (sample_shots(t, 4, seed=1) == picked).all()
    # more shots than videos: every video used, then second frames
    many = t.iloc[sample_shots(t, 12, seed=0)]
    assert many.groupby("label")["key"].nunique().tolist() == [10, 10]
    with pytest.raises(DamlError, match="shots"):
        sample_shots(t, 51, seed=0)
