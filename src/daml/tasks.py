"""Source tasks, the task sampler of meta-training, and k-shot sampling of target faces.

Description:
    A task is one source domain (paper section 2): the fake faces of one manipulation
    technique plus the real faces of the same faceset and split. Every meta-iteration
    draws a batch of distinct tasks and, for each, a support and a query batch, each
    balanced (half fake, half real; the real half gets the odd face). The two batches of
    a task never share a video: each draw deals the task's videos of each class at random
    into a support half and a query half, and each batch draws its faces from its half, so
    the query loss measures adaptation to other footage, not to other frames of the
    support's own videos.

    Choices the paper leaves open:
    - One technique as source (Table 3): a single task would make meta-learning plain
      training, so its videos are split into `pseudo_domains` disjoint identity groups, one
      task each, named `<technique>#<group>`. Videos are linked by the identities they show
      (`video_identities`: an FF++ fake `953_974` links 953 and 974, so the pair's two
      reals and its fakes form one component); whole components are dealt round-robin to
      the groups in a fixed order (crc32 of the component's first identity), so no identity
      sits in two tasks. Groups lacking fakes or reals are dropped (logged).
    - A batch never holds one task twice: it draws min(`tasks_per_batch`, number of tasks)
      tasks without replacement (three for a leave-one-out source with three techniques).
    - Within a batch, faces are drawn without replacement when the pool is large enough.
    - Few-shot faces for a target come from its train split, minus every video that shows
      an identity (or, with the "footage" rule, uses the real clip) of one of its held-out
      videos (`leak_free`).

    All randomness comes from one `torch.Generator` whose state the training checkpoint
    saves, so a resumed run draws the same batches.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from daml.errors import DamlError
from daml.unionfind import UnionFind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One source task: positions (into a `Faces` table) of its fake and real faces.

    Attributes:
        name: the technique (or pseudo-domain) name.
        fake, real: positions of the task's fake and real faces.
        fake_videos, real_videos: the video of each of those faces, as any labels (the
            face table's `key`); None counts every face as a video of its own.
    """

    name: str
    fake: np.ndarray
    real: np.ndarray
    fake_videos: np.ndarray | None = None
    real_videos: np.ndarray | None = None


@dataclass(frozen=True)
class TaskBatch:
    """Support and query draws of one task: positions into `Faces` and labels (1 fake)."""

    name: str
    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor


LEAK_RULES = ("identity", "footage")


def video_identities(table: pd.DataFrame, rule: str = "identity") -> list[frozenset[str]]:
    """What each row's video shows that a held-out video must not share, as `dataset:id`.

    Description:
        Read from the face table's `target_id`, `source_id` and `clip_id` columns, which the
        readers fill from each layout's naming.
        - "identity": the people. FF++ `953_974` shows 953 and 974 (real `953`: 953);
          Celeb-DF `id0_id16_0003` shows id0 and id16 (real `id0_0003`: id0; YouTube-real:
          its own clip); a DFDC fake shows its `original` (a real: itself); WildDeepfake
          publishes none (empty set).
        - "footage": the real clip a video is made of: Celeb-DF `id0_id16_0003` is made of
          `id0_0003` (a real: itself); elsewhere the same as "identity", whose ids there
          name videos.
    """
    if rule not in LEAK_RULES:
        raise DamlError(f"leak_rule={rule!r}: use one of {LEAK_RULES} (sources/targets in the config)")
    # FF++ and DFDC ids name videos, so their footage is their ids; Celeb-DF's clip_id is
    # the real clip a fake is made of, and its source_id a person (left out below)
    columns = ("target_id", "source_id") if rule == "identity" else ("clip_id", "source_id")
    datasets = table["dataset"].astype(str).to_numpy()
    values = zip(*(table[c].to_numpy() for c in columns))
    ids = []
    for dataset, row in zip(datasets, values):
        if rule == "footage" and dataset == "celebdf":
            row = row[:1]  # Celeb-DF's source_id is a person, not a clip
        ids.append(frozenset(f"{dataset}:{i}" for i in row if isinstance(i, str) and i))
    return ids


def identity_components(table: pd.DataFrame, rule: str = "identity") -> np.ndarray:
    """Per row, the name of its connected component of identities (union-find).

    Two videos are in one component when they share an identity (or, under the "footage"
    rule, a real clip: `video_identities`), directly or through other videos; a row without
    identities is a component of its own (its key). Names start with the dataset.
    """
    sets = UnionFind()
    identities = video_identities(table, rule)
    for ids in identities:
        ordered = sorted(ids)
        for other in ordered[1:]:
            sets.union(ordered[0], other)
    keys = table["key"].astype(str).to_numpy()
    return np.array([sets.find(min(ids)) if ids else key for ids, key in zip(identities, keys)])


def leak_free(train: pd.DataFrame, held_out: pd.DataFrame, rule: str = "identity") -> np.ndarray:
    """Mask of `train` rows whose video shares nothing (`video_identities`) with a held-out one.

    Arguments:
        train: face table of the candidate shots (a target's train split).
        held_out: face table of what is scored after adaptation (its test split, or the
            val split for model selection).
        rule: "identity" or "footage" (`video_identities`).

    Returns:
        bool array over `train` rows.
    """
    held = video_identities(held_out, rule) if len(held_out) else []
    banned = frozenset().union(*held)
    return np.array([not (ids & banned) for ids in video_identities(train, rule)], dtype=bool)


def build_tasks(table: pd.DataFrame, techniques: Sequence[str], pseudo_domains: int) -> list[Task]:
    """Tasks of a source: one per technique, or pseudo-domains for a single technique.

    Arguments:
        table: face metadata (already restricted to one faceset and split).
        techniques: the source's fake techniques.
        pseudo_domains: number of identity groups when `techniques` has one entry
            (1 or less: one task).

    Returns:
        list of `Task`; raises `DamlError` when a technique has no fake or no real face.
    """
    labels = table["label"].to_numpy()
    technique = table["technique"].to_numpy()
    videos = table["key"].astype(str).to_numpy()
    real = np.flatnonzero(labels == 0)
    if len(real) == 0:
        raise DamlError("source has no real faces in this split: check the faces stage output")
    tasks = []
    for name in techniques:
        fake = np.flatnonzero((labels == 1) & (technique == name))
        if len(fake) == 0:
            raise DamlError(
                f"source technique {name!r} has no fake faces in this split: check "
                "sources.*.techniques in the config against the manifest"
            )
        tasks.append(Task(name, fake, real, videos[fake], videos[real]))
    if len(techniques) == 1 and pseudo_domains > 1:
        tasks = _pseudo_domains(table, tasks[0], pseudo_domains)
    return tasks


def _pseudo_domains(table: pd.DataFrame, task: Task, groups: int) -> list[Task]:
    rows = np.concatenate([task.fake, task.real])
    components = identity_components(table.iloc[rows])
    order = sorted(set(components), key=lambda c: (zlib.crc32(c.encode()), c))
    group_of = {c: i % groups for i, c in enumerate(order)}
    group = np.full(len(table), -1)
    group[rows] = [group_of[c] for c in components]
    split = []
    for g in range(groups):
        fake = task.fake[group[task.fake] == g]
        reals = task.real[group[task.real] == g]
        if len(fake) == 0 or len(reals) == 0:
            log.warning(
                "pseudo-domain %d of %s has %d fake and %d real faces: dropped",
                g,
                task.name,
                len(fake),
                len(reals),
            )
            continue
        keys = table["key"].astype(str).to_numpy()
        split.append(Task(f"{task.name}#{g}", fake, reals, keys[fake], keys[reals]))
    if not split:
        raise DamlError(
            f"no pseudo-domain of {task.name!r} has both classes: lower train.pseudo_domains"
        )
    return split


class TaskSampler:
    """Draws batches of tasks, each with balanced support and query batches of other videos.

    Arguments:
        tasks: the source tasks (`build_tasks`).
        tasks_per_batch: tasks per meta-iteration (at most the number of tasks).
        support_size, query_size: faces per support and query batch.
        seed: seed of the sampler's own generator.

    Example:
        >>> sampler = TaskSampler(tasks, 4, 16, 16, seed=0)
        >>> batch = sampler.sample()   # list of 4 TaskBatch
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        tasks_per_batch: int,
        support_size: int,
        query_size: int,
        seed: int,
    ):
        if support_size < 2 or query_size < 2:
            raise DamlError(
                "train.support_size and train.query_size must be at least 2 "
                "(one real and one fake face)"
            )
        self.tasks = list(tasks)
        # a batch holds distinct tasks, so a source with fewer tasks gets smaller batches
        self.tasks_per_batch = min(tasks_per_batch, len(self.tasks))
        self.support_size = support_size
        self.query_size = query_size
        self.generator = torch.Generator().manual_seed(seed)
        # per task and class: each face's video as a code 0..V-1, and V
        self._videos = [
            (_video_codes(task.fake, task.fake_videos, task.name, "fake"),
             _video_codes(task.real, task.real_videos, task.name, "real"))
            for task in self.tasks
        ]

    def _draw(self, pool: np.ndarray, count: int) -> torch.Tensor:
        if len(pool) >= count:
            pick = torch.randperm(len(pool), generator=self.generator)[:count]
        else:
            pick = torch.randint(len(pool), (count,), generator=self.generator)
        return torch.as_tensor(pool)[pick]

    def _halves(self, pool: np.ndarray, videos: tuple[np.ndarray, int]):
        """`pool` dealt by video into a support half and a query half (random, disjoint)."""
        codes, count = videos
        support_side = np.zeros(count, dtype=bool)
        support_side[torch.randperm(count, generator=self.generator)[: (count + 1) // 2]] = True
        in_support = support_side[codes]
        return pool[in_support], pool[~in_support]

    def _balanced(self, fakes: np.ndarray, reals: np.ndarray, size: int):
        half = size // 2
        index = torch.cat([self._draw(fakes, half), self._draw(reals, size - half)])
        labels = torch.cat([torch.ones(half), torch.zeros(size - half)])
        return index, labels

    def sample(self) -> list[TaskBatch]:
        """One meta-batch: `tasks_per_batch` distinct tasks in random order, each with a
        support and a query batch drawn from disjoint halves of its videos."""
        batch = []
        order = torch.randperm(len(self.tasks), generator=self.generator)[: self.tasks_per_batch]
        for i in order.tolist():
            task, (fake_videos, real_videos) = self.tasks[i], self._videos[i]
            support_fakes, query_fakes = self._halves(task.fake, fake_videos)
            support_reals, query_reals = self._halves(task.real, real_videos)
            support, support_labels = self._balanced(support_fakes, support_reals,
                                                     self.support_size)
            query, query_labels = self._balanced(query_fakes, query_reals, self.query_size)
            batch.append(TaskBatch(task.name, support, support_labels, query, query_labels))
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _video_codes(
    positions: np.ndarray, videos: np.ndarray | None, task: str, kind: str
) -> tuple[np.ndarray, int]:
    """Each face's video as a code 0..V-1, and V; at least two videos, one per batch."""
    if videos is None:  # no video known: every face is its own
        codes = np.arange(len(positions))
    else:
        _, codes = np.unique(np.asarray(videos), return_inverse=True)
    count = int(codes.max()) + 1 if len(codes) else 0
    if count < 2:
        raise DamlError(
            f"task {task!r} has {count} {kind} video(s); its support and query batches need "
            "one each, from different videos: give the source more videos or lower "
            "train.pseudo_domains"
        )
    return codes.reshape(-1), count


def sample_shots(table: pd.DataFrame, shots: int, seed: int | Sequence[int]) -> np.ndarray:
    """Positions of `shots` faces per class, spread over as many videos as possible.

    Description:
        For each label, the faces are shuffled with a generator seeded by `seed`; each face
        gets its rank among the faces of its video (0 for the first drawn of a video, ...);
        the first `shots` faces by (rank, shuffled order) are taken, so k faces come from k
        distinct videos when the class has at least k videos. The caller passes only the
        target's train split.

    Arguments:
        table: metadata of the candidate faces (train split of the target).
        shots: faces per class (k).
        seed: seed of the draw (an int or a seed sequence).

    Returns:
        int64 array of 2*shots positions (fakes first); `DamlError` if a class is short.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for label in (1, 0):
        rows = np.flatnonzero(table["label"].to_numpy() == label)
        if len(rows) < shots:
            name = "fake" if label else "real"
            raise DamlError(
                f"only {len(rows)} {name} faces in the target's train split for "
                f"{shots} shots: lower adapt shots or check the target"
            )
        rows = rows[rng.permutation(len(rows))]
        videos = table["key"].to_numpy()[rows]
        rank = pd.Series(videos).groupby(videos, sort=False).cumcount().to_numpy()
        order = np.lexsort((np.arange(len(rows)), rank))
        picked.append(rows[order[:shots]])
    return np.concatenate(picked).astype(np.int64)
