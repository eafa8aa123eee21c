"""Embedded synthetic benchmark: talking-face videos written in the four real dataset layouts.

Description:
    A fresh clone without any licensed dataset still runs the whole workflow on these. The
    generator draws procedurally rendered faces (`face`), films them in each dataset's style
    (`camera`, `domains`), makes fakes with four manipulations standing in for FF++'s
    techniques (`manipulate`) and writes FF++, Celeb-DF v2, DFDC and WildDeepfake layouts
    (`layouts`, `video`) atomically (`generator`).
"""

from daml.data.synthetic.generator import generate
from daml.data.synthetic.layouts import DATASETS
from daml.data.synthetic.settings import SyntheticSettings

__all__ = ["generate", "SyntheticSettings", "DATASETS"]
