"""Any timm image model as a one-logit face-forgery detector.

Description:
    `TimmBackbone` wraps `timm.create_model(name, num_classes=1)`: the face batch that every
    stage feeds a model (`daml.facedata.to_input`: RGB in [-1, 1], channels last) is mapped
    to the normalisation the model was pretrained with (its `pretrained_cfg` mean and std),
    and the single logit is returned as shape (N,), like Conv-4. The mapping is an affine
    map per channel held in two non-persistent buffers, so it moves with the model, stays
    out of the state dict, and costs nothing inside a CUDA graph.

    Nothing else is adapted: the meta-learning code evaluates the module with
    `torch.func.functional_call` over a dict of parameters and buffers (`daml.meta`), which
    works on any module. timm's `BatchNormAct2d` updates `num_batches_tracked` in place and
    reads its momentum as a constant, so the running statistics follow the same policy as
    Conv-4's (`daml.models.conv4`): updated only by the support pass at theta, scratch
    copies for passes at adapted weights.

    timm is imported here only, when a timm backbone is built: its import takes about 2 s,
    which every Conv-4 job would otherwise pay.
"""

from __future__ import annotations

import torch
from torch import nn

from daml.models.weights import create_timm_model


class TimmBackbone(nn.Module):
    """A timm model with one output logit, fed the project's [-1, 1] RGB faces.

    Arguments:
        name: a timm model name, optionally with a pretrained tag
            (`legacy_xception.tf_in1k`, `efficientnet_b4`).
        image_size: side of the square input in pixels (recorded; timm models pool
            globally, so any size at least the network's stride works).
        pretrained: "none", "hub" or the path of a weights file (`daml.models.weights`).
        where: the config key the backbone comes from, for error messages.

    Example:
        >>> model = TimmBackbone("test_efficientnet", 64)
        >>> model(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2])
    """

    def __init__(self, name: str, image_size: int, pretrained: str = "none", where: str = "backbone"):
        super().__init__()
        self.image_size = image_size
        self.net = create_timm_model(name, pretrained, where)
        config = self.net.pretrained_cfg
        mean = torch.tensor(config.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32)
        std = torch.tensor(config.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32)
        # x in [-1, 1] is pixel/127.5 - 1; the model wants (pixel/255 - mean) / std
        self.register_buffer("input_scale", (0.5 / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", ((0.5 - mean) / std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.input_scale + self.input_shift).squeeze(1)
