"""Source tasks, the task sampler of meta-training, and k-shot sampling of target faces.

Description:
    A task is one source domain (paper section 2): the fake faces of one manipulation
    technique plus the real faces of the same faceset and split. Every meta-iteration
    draws `tasks_per_batch` tasks and, for each, a support and a query batch drawn
    independently, each balanced (half fake, half real; the real half gets the odd face).

    Choices the paper leaves open:
    - One technique as source (Table 3): a single task would make meta-learning plain
      training, so its videos are split into `pseudo_domains` disjoint groups by a stable
      hash of the target identity (`zlib.crc32` of the part of `video` before the first
      "_": FF++ fake `953_974` and real `953` both go to identity `953`), fakes and reals
      alike; each group is one task named `<technique>#<group>`. Groups lacking fakes or
      reals are dropped (logged).
    - Fewer tasks than `tasks_per_batch` (e.g. three leave-one-out techniques with 4 tasks
      per batch): tasks are drawn with replacement; otherwise without replacement, so with
      the paper's four FF++ techniques every batch holds each technique once.
    - Within a batch, faces are drawn without replacement when the pool is large enough.

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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One source task: positions (into a `Faces` table) of its fake and real faces."""

    name: str
    fake: np.ndarray
    real: np.ndarray


@dataclass(frozen=True)
class TaskBatch:
    """Support and query draws of one task: positions into `Faces` and labels (1 fake)."""

    name: str
    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor


def identity_of(video: str) -> str:
    """Identity used for pseudo-domains: the part of the video id before the first `_`."""
    return str(video).split("_")[0]


def identity_group(video: str, groups: int) -> int:
    """Stable group of a video's identity in 0..groups-1 (crc32, independent of run/seed)."""
    return zlib.crc32(identity_of(video).encode()) % groups


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
        tasks.append(Task(name, fake, real))
    if len(techniques) == 1 and pseudo_domains > 1:
        videos = table["video"].astype(str).to_numpy()
        group = np.array([identity_group(v, pseudo_domains) for v in videos])
        split = []
        for g in range(pseudo_domains):
            fake = tasks[0].fake[group[tasks[0].fake] == g]
            reals = real[group[real] == g]
            if len(fake) == 0 or len(reals) == 0:
                log.warning(
                    "pseudo-domain %d of %s has %d fake and %d real faces: dropped",
                    g,
                    techniques[0],
                    len(fake),
                    len(reals),
                )
                continue
            split.append(Task(f"{techniques[0]}#{g}", fake, reals))
        if not split:
            raise DamlError(
                f"no pseudo-domain of {techniques[0]!r} has both classes: "
                "lower train.pseudo_domains"
            )
        tasks = split
    return tasks


class TaskSampler:
    """Draws batches of tasks, each with balanced support and query batches.

    Arguments:
        tasks: the source tasks (`build_tasks`).
        tasks_per_batch, support_size, query_size: batch shape per meta-iteration.
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
        self.tasks_per_batch = tasks_per_batch
        self.support_size = support_size
        self.query_size = query_size
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, pool: np.ndarray, count: int) -> torch.Tensor:
        if len(pool) >= count:
            pick = torch.randperm(len(pool), generator=self.generator)[:count]
        else:
            pick = torch.randint(len(pool), (count,), generator=self.generator)
        return torch.as_tensor(pool)[pick]

    def _balanced(self, task: Task, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        fakes = size // 2
        index = torch.cat([self._draw(task.fake, fakes), self._draw(task.real, size - fakes)])
        labels = torch.cat([torch.ones(fakes), torch.zeros(size - fakes)])
        return index, labels

    def choose_tasks(self) -> list[Task]:
        if len(self.tasks) >= self.tasks_per_batch:
            order = torch.randperm(len(self.tasks), generator=self.generator)[
                : self.tasks_per_batch
            ]
        else:
            order = torch.randint(
                len(self.tasks), (self.tasks_per_batch,), generator=self.generator
            )
        return [self.tasks[i] for i in order.tolist()]

    def sample(self) -> list[TaskBatch]:
        """One meta-batch: `tasks_per_batch` tasks with independent support/query draws."""
        batch = []
        for task in self.choose_tasks():
            support, support_labels = self._balanced(task, self.support_size)
            query, query_labels = self._balanced(task, self.query_size)
            batch.append(TaskBatch(task.name, support, support_labels, query, query_labels))
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def sample_shots(table: pd.DataFrame, shots: int, seed: int) -> np.ndarray:
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
        seed: seed of the draw.

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
