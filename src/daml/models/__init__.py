"""The networks: the paper's Conv-4, any timm model, and the registry that builds and loads them.

- `daml.models.conv4`: Conv-4 of MAML with one logit (the paper's backbone).
- `daml.models.timm_backbone`: a timm model with one logit, fed the same faces.
- `daml.models.weights`: `pretrained: none | hub | <file>`.
- `daml.models.registry`: `build_model`, `load_model`, `inference_copy` for any backbone
  (`daml.methods`: what a configured method trains).
"""

from daml.methods import ALGORITHMS, CONV4, Backbone, MethodSpec, method_specs
from daml.models.conv4 import Conv4, feature_size
from daml.models.registry import (
    build_model,
    graph_capturable,
    inference_copy,
    load_model,
    model_backbone,
)

__all__ = [
    "ALGORITHMS",
    "CONV4",
    "Backbone",
    "Conv4",
    "MethodSpec",
    "build_model",
    "feature_size",
    "graph_capturable",
    "inference_copy",
    "load_model",
    "method_specs",
    "model_backbone",
]
