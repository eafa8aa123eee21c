"""The test population's resampling units and their cluster bootstrap.

Description:
    Test videos are not independent: an FF++ pair's two real videos and its fakes show the
    same two people, a Celeb-DF fake is made of a real clip that may also be tested, and
    the three unseen techniques of a Table 3 row share their real test videos. The evaluate
    stage writes each test face's `cluster` (videos linked by a person or footage under the
    target's leak rule, `daml.tasks.identity_components`). Here the clusters of every cell
    that one number averages are merged once more wherever a video appears under two
    cluster names, and each merged group is one resampling unit: all its videos, and all
    their frames, are drawn together, and a unit shared by several cells is drawn once for
    all of them.

    `ClusterBootstrap` draws units with replacement within their dataset (the stratum: two
    datasets are two populations, each of the size it has), as Davison and Hinkley's
    cluster bootstrap does, and turns each draw into per-frame counts.

References:
    Davison and Hinkley, "Bootstrap Methods and their Application" (1997), section 3.8
    (resampling clusters); Field and Welsh, "Bootstrapping clustered data", JRSS B (2007).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from daml.unionfind import UnionFind


def merge_units(keys: Sequence[np.ndarray], clusters: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per cell, each face's resampling unit (an int shared across the cells).

    Arguments:
        keys: per cell, each face's video key.
        clusters: per cell, each face's test cluster (evaluate stage).

    Returns:
        per cell, int array of unit ids 0..U-1: two faces share a unit when their clusters
        are linked through a video key or a cluster name, in any of the cells.
    """
    sets = UnionFind()
    for cell_keys, cell_clusters in zip(keys, clusters):
        for key, cluster in set(zip(map(str, cell_keys), map(str, cell_clusters))):
            sets.union("k:" + key, "c:" + cluster)
    roots = {}
    return [
        np.array([roots.setdefault(sets.find("c:" + str(c)), len(roots)) for c in cell_clusters],
                 dtype=np.int64)
        for cell_clusters in clusters
    ]


class ClusterBootstrap:
    """Resamples of units, drawn with replacement within their stratum.

    Arguments:
        strata: the stratum (dataset) of every unit 0..U-1.
        n_resamples: number of resamples.
        seed: seed of the draws (a table is reproducible).

    Attributes:
        counts: int array (n_resamples, U): how often each unit was drawn.
    """

    def __init__(self, strata: Sequence[str], n_resamples: int, seed: int = 0):
        strata = np.asarray(strata, dtype=str)
        rng = np.random.default_rng(seed)
        self.counts = np.zeros((n_resamples, len(strata)), dtype=np.int64)
        for stratum in sorted(set(strata)):
            units = np.flatnonzero(strata == stratum)
            drawn = rng.integers(len(units), size=(n_resamples, len(units)))
            for b in range(n_resamples):
                self.counts[b, units] = np.bincount(drawn[b], minlength=len(units))
        self.units = len(strata)

    @property
    def n_resamples(self) -> int:
        return self.counts.shape[0]
