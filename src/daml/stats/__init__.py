"""How much the tables' numbers can tell: intervals, comparisons and power.

Modules:
    metrics: frame-level AUC and ACC under resampling weights, many resamples at once.
    resampling: test clusters as resampling units, and their bootstrap (`ClusterBootstrap`).
    intervals: `Cell` (one table cell's predictions), `Analysis` (every cell of a table,
        resampled jointly) and `Estimate` (a number with the noise it holds).
    power: the smallest difference an estimate's data could detect.
    simulate: scores with known seed, episode and cluster variance, for the coverage test.
"""
