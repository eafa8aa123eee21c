"""The smallest difference that an estimate's data could detect.

Description:
    For a two-sided test at level `alpha` that rejects "no difference" when the interval
    excludes zero, a true difference delta is found with probability `power` when
    delta >= (t(1 - alpha/2, df) + t(power, df)) * se, with the estimate's own standard
    error and degrees of freedom (the usual minimum detectable effect of a t test). With
    one degree of freedom (two seeds) the factor is 12.7 + 1.4 = 14.1 standard errors;
    with four it is 2.8 + 0.9 = 3.7.

References:
    Cohen, "Statistical Power Analysis for the Behavioral Sciences" (1988), chapter 2.
"""

from __future__ import annotations

import math

from scipy import stats

from daml.stats.intervals import Estimate

POWER = 0.8
ALPHA = 0.05


def detectable_difference(estimate: Estimate, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest true difference found with probability `power` (NaN if undefined)."""
    if not (math.isfinite(estimate.se) and estimate.df > 0):
        return math.nan
    factor = stats.t.ppf(1 - alpha / 2, estimate.df) + stats.t.ppf(power, estimate.df)
    return float(factor * estimate.se)
