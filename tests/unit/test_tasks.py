"""Task building and sampling, pseudo-domains, leak-free k-shot draws."""

import numpy as np
import pandas as pd
import pytest

from daml.data import ffpp
from daml.errors import DamlError
from daml.tasks import (
    TaskSampler,
    build_tasks,
    identity_components,
    leak_free,
    sample_shots,
    video_identities,
)

TECHNIQUES = list(ffpp.TECHNIQUES)


def row(dataset, technique, video, label, target, source, frame=0, split="train"):
    key = f"{dataset}/{'c23' if dataset == 'ffpp' else 'none'}/{technique}/{video}"
    clip = target  # as the readers write it: the target's video, or for Celeb-DF the real clip
    if dataset == "celebdf":
        clip = video if not label else "_".join(video.split("_")[::2])
    return dict(key=key, dataset=dataset, technique=technique, video=video, label=label,
                target_id=target, source_id=source, clip_id=clip, frame=frame, split=split)


def table(techniques=TECHNIQUES, pairs=6, frames=3, first=0, split="train"):
    """FF++ in its official shape: pair (a, b) gives reals a, b and fakes a_b, b_a."""
    rows = []
    for p in range(first, first + pairs):
        a, b = f"{2 * p:03d}", f"{2 * p + 1:03d}"
        for f in range(frames):
            rows += [row("ffpp", "real", a, 0, a, "", f, split), row("ffpp", "real", b, 0, b, "", f, split)]
            for t in techniques:
                rows += [row("ffpp", t, f"{a}_{b}", 1, a, b, f, split),
                         row("ffpp", t, f"{b}_{a}", 1, b, a, f, split)]
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


def test_a_batch_never_holds_a_task_twice():
    t = table(TECHNIQUES[:3])
    sampler = TaskSampler(build_tasks(t, TECHNIQUES[:3], 1), 4, 4, 4, seed=1)
    assert sampler.tasks_per_batch == 3  # leave-one-out: three tasks, so batches of three
    for _ in range(20):
        names = [b.name for b in sampler.sample()]
        assert sorted(names) == sorted(TECHNIQUES[:3])
    four = TaskSampler(build_tasks(table(), TECHNIQUES, 1), 4, 4, 4, seed=1)
    for _ in range(20):
        assert sorted(b.name for b in four.sample()) == sorted(TECHNIQUES)


def test_single_technique_pseudo_domains_keep_each_identity_in_one_task():
    t = table(["Deepfakes"], pairs=30)
    tasks = build_tasks(t, ["Deepfakes"], pseudo_domains=3)
    assert len(tasks) == 3 and all(task.name.startswith("Deepfakes#") for task in tasks)
    seen = []
    for task in tasks:
        rows = t.loc[np.concatenate([task.fake, task.real])]
        seen.append(set(rows.target_id) | set(rows.source_id[rows.source_id != ""]))
        assert abs(len(task.fake) - 20 * 3) <= 2 * 3 * 2  # 10 pairs, dealt evenly
    # 953_974 shows 974 too: grouping by the first id alone would put 974 in two tasks
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    fakes = np.concatenate([task.fake for task in tasks])
    assert sorted(fakes) == sorted(np.flatnonzero(t.label == 1))  # every fake used once


def test_identity_components_link_the_two_ids_of_a_pair():
    t = table(["Deepfakes"], pairs=2, frames=1)
    components = identity_components(t)
    pair_of = dict(zip(t.video, components))
    assert pair_of["000"] == pair_of["001"] == pair_of["000_001"] == pair_of["001_000"]
    assert pair_of["002"] == pair_of["003_002"] != pair_of["000"]


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
    t = table(["Deepfakes"], pairs=5, frames=5)
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


# The three naming schemes, as the readers write them into the manifest (target_id, source_id).
CELEBDF = [  # (video, label, target_id, source_id, split)
    ("id0_0001", 0, "id0", "", "test"),
    ("id1_id16_0002", 1, "id1", "id16", "test"),
    ("id0_0004", 0, "id0", "", "train"),          # same person as a test real
    ("id3_id0_0005", 1, "id3", "id0", "train"),   # shows id0's face
    ("id16_0000", 0, "id16", "", "train"),        # the face source of a test fake
    ("id1_id7_0009", 1, "id1", "id7", "train"),   # same target person as a test fake
    ("id0_id3_0001", 1, "id0", "id3", "train"),   # made of the test real's own clip
    ("id5_0003", 0, "id5", "", "train"),
    ("id5_id7_0001", 1, "id5", "id7", "train"),
    ("00170", 0, "00170", "", "train"),           # YouTube-real: its own clip
]
FFPP = [
    ("953", 0, "953", "", "test"),
    ("974_953", 1, "974", "953", "test"),
    ("974", 0, "974", "", "train"),               # its pair partner is in test
    ("953_100", 1, "953", "100", "train"),
    ("100_200", 1, "100", "200", "train"),
    ("200", 0, "200", "", "train"),
]
DFDC = [
    ("aaaa", 0, "aaaa", "", "test"),
    ("bbbb", 1, "", "", "test"),                  # test fakes name no original
    ("cccc", 1, "aaaa", "", "train"),             # made from a test real
    ("aaaa", 0, "aaaa", "", "train"),             # the same clip in both (a user's split)
    ("dddd", 0, "dddd", "", "train"),
    ("eeee", 1, "dddd", "", "train"),
]


def scheme(dataset, entries):
    technique = {"celebdf": "Celeb-synthesis", "ffpp": "Deepfakes", "dfdc": "dfdc-fake"}[dataset]
    return pd.DataFrame([row(dataset, technique if label else "real", video, label, target, source,
                             split=split) for video, label, target, source, split in entries])


@pytest.mark.parametrize(
    "dataset,entries,kept",
    [
        ("celebdf", CELEBDF, {"id5_0003", "id5_id7_0001", "00170"}),
        ("ffpp", FFPP, {"100_200", "200"}),
        ("dfdc", DFDC, {"dddd", "eeee"}),
    ],
)
def test_shot_pool_leaves_out_videos_sharing_an_identity_with_the_test_split(dataset, entries, kept):
    frame = scheme(dataset, entries)
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    pool = leak_free(train, test)
    assert set(train.video[pool]) == kept
    # nothing is held out: everything is a candidate
    assert leak_free(train, test.iloc[:0]).all()


def test_footage_rule_leaves_out_only_videos_made_of_a_test_clip():
    frame = scheme("celebdf", CELEBDF)
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    left_out = set(train.video[~leak_free(train, test, "footage")])
    assert left_out == {"id0_id3_0001"}  # made of id0_0001, a test video
    # FF++ and DFDC name videos by their footage: the same pool as the identity rule
    for dataset, entries in (("ffpp", FFPP), ("dfdc", DFDC)):
        frame = scheme(dataset, entries)
        train, test = frame[frame.split == "train"], frame[frame.split == "test"]
        assert (leak_free(train, test, "footage") == leak_free(train, test, "identity")).all()


def test_identities_are_namespaced_by_dataset():
    frame = pd.concat([scheme("ffpp", FFPP[:1]), scheme("dfdc", [("953", 0, "953", "", "train")])])
    first, second = video_identities(frame)
    assert not (first & second)


def test_support_and_query_of_a_task_never_share_a_video():
    four, pseudo = table(pairs=6, frames=4), table(["Deepfakes"], pairs=12)
    sources = [(four, build_tasks(four, TECHNIQUES, 1)),
               (pseudo, build_tasks(pseudo, ["Deepfakes"], 3))]
    for frame, tasks in sources:
        sampler = TaskSampler(tasks, 4, 8, 8, seed=3)
        halves = set()
        for _ in range(30):
            for b in sampler.sample():
                support = set(frame.loc[b.support.numpy(), "key"])
                query = set(frame.loc[b.query.numpy(), "key"])
                assert not support & query
                halves.add(frozenset(support))
        assert len(halves) > 10  # the deal changes from draw to draw


def test_a_task_with_one_video_of_a_class_names_the_fix():
    t = table(["Deepfakes"], pairs=1, frames=4)
    t = t[t.video != "001_000"]  # one fake video left
    with pytest.raises(DamlError, match="different videos"):
        TaskSampler(build_tasks(t, ["Deepfakes"], 1), 1, 4, 4, seed=0)
