"""Conv-4 of MAML with a one-logit face-forgery head: the paper's backbone.

Description:
    The paper (section 3.1.3) uses the 4-block Conv-4 of MAML: each block is a 3x3
    convolution with 64 filters, batch norm, ReLU and 2x2 max-pooling, followed by a
    linear classifier. We use one output logit (the log-odds of "fake"); the loss is the
    binary cross-entropy on that logit, which is the two-class cross-entropy of the paper
    written with one free logit instead of two (the softmax of two logits only depends on
    their difference). `prob = sigmoid(logit)` is the probability of the fake class.

    Inside a block we apply max-pooling before ReLU: `relu(maxpool(x)) == maxpool(relu(x))`
    exactly (both are monotone), and the gradient is the same, but ReLU then touches four
    times fewer values, which matters on a CPU (benchmarks/bench_meta.py).

Batch norm policy (docs/protocol.md, "Batch norm"):
    - Evaluation and validation run in `eval()` mode with the tracked running statistics,
      so a batch holding one video (one label) is normalised exactly like any other batch.
    - During meta-training every forward pass runs in train mode (batch statistics of that
      task's support or query batch, as in MAML). The running statistics are updated only by
      the support forward pass at the meta-parameters theta (the first inner step of every
      task), i.e. with the statistics of the network that is saved and evaluated; passes at
      adapted weights theta' use scratch buffers that are thrown away (`daml.meta`).
    - ERM updates them on its pooled batch in the usual way.
    - Fine-tuning: see `daml.adapt`.

Tasks as channel groups (`grouped_forward`, `train.task_batching: grouped`):
    T tasks, each with its own weights, run as one network of T times the channels: their
    images side by side along the channels, each convolution grouped (T groups), each
    batch norm over T*64 channels (per channel, so per task), pooling and ReLU per channel
    as they are, and one linear head per task. That is T Conv-4s with no layout change
    between layers (`daml.batched`).

References:
    Finn et al., "Model-Agnostic Meta-Learning", ICML 2017 (Conv-4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from daml.errors import DamlError

BLOCKS = 4


def feature_size(image_size: int, hidden: int = 64, blocks: int = BLOCKS) -> int:
    """Length of the flattened Conv-4 feature for a square input of `image_size` pixels.

    Convolutions keep the size (padding 1); every 2x2 max-pool floors it by half.
    """
    size = image_size
    for _ in range(blocks):
        size //= 2
    if size < 1:
        raise DamlError(
            f"image_size={image_size} is too small for {blocks} pooling blocks: "
            f"use at least {2 ** blocks} pixels (train.image_size)"
        )
    return hidden * size * size


class Conv4(nn.Module):
    """Conv-4 of MAML with a linear head returning one logit per image.

    Arguments:
        image_size (int): side of the square RGB input in pixels.
        hidden (int, default 64): filters per convolution.
        in_channels (int, default 3): input channels.

    Returns (forward):
        logits of shape (N,): log-odds that each face is fake.

    Example:
        >>> model = Conv4(32)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2])
    """

    def __init__(self, image_size: int, hidden: int = 64, in_channels: int = 3):
        super().__init__()
        self.image_size = image_size
        self.hidden = hidden
        layers = []
        channels = in_channels
        for _ in range(BLOCKS):
            layers += [
                nn.Conv2d(channels, hidden, kernel_size=3, padding=1),
                nn.BatchNorm2d(hidden, track_running_stats=True),
                nn.MaxPool2d(2),
                nn.ReLU(inplace=True),  # safe: max-pool backward needs its input only
            ]
            channels = hidden
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(feature_size(image_size, hidden), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


def grouped_forward(
    model: Conv4,
    params: dict[str, torch.Tensor],
    sinks: dict[str, torch.Tensor] | None,
    images: torch.Tensor,
    tasks: int,
) -> torch.Tensor:
    """`model`'s forward for `tasks` tasks at once, each with its own weights, in train mode.

    Arguments:
        model: the Conv-4 whose layers (kernel sizes, momentum, eps) are followed.
        params: every parameter of `model` with a leading task dim (T, *shape).
        sinks: per-task running buffers (T, C) by buffer name that each batch norm updates
            with its batch statistics (`daml.batched.statistic_sinks`), or None: no update.
        images: (B, T*3, S, S), task t's images in channels 3t..3t+2 (`torch.cat` on dim 1).
        tasks: T.

    Returns:
        logits (T, B), task t's those of `model` with params[...][t] on its images.
    """
    x = images
    for index, layer in enumerate(model.features):
        name = f"features.{index}"
        if isinstance(layer, nn.Conv2d):
            weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
            x = F.conv2d(x, weight.flatten(0, 1), bias.flatten(), layer.stride, layer.padding,
                         layer.dilation, tasks * layer.groups)
        elif isinstance(layer, nn.BatchNorm2d):
            mean = var = None
            if sinks is not None:  # (T, C) buffers seen as T*C channels: the same memory
                mean = sinks[f"{name}.running_mean"].view(-1)
                var = sinks[f"{name}.running_var"].view(-1)
            x = F.batch_norm(x, mean, var, params[f"{name}.weight"].flatten(),
                             params[f"{name}.bias"].flatten(), True, layer.momentum, layer.eps)
        elif isinstance(layer, (nn.MaxPool2d, nn.ReLU)):
            x = layer(x)  # acts on each channel alone
        else:
            raise TypeError(f"grouped_forward does not know {type(layer).__name__} ({name})")
    # per task the features flatten as forward's do: (C, s, s) of that task's channels
    features = x.reshape(x.shape[0], tasks, -1)
    weight, bias = params["head.weight"], params["head.bias"]
    return torch.einsum("btf,tf->tb", features, weight[:, 0]) + bias


def fold_batch_norm(model: Conv4) -> Conv4:
    """`model` (in eval mode) with each convolution folded with the batch norm after it.

    In eval mode a batch norm is an affine map per channel, so it can be folded into the
    preceding convolution's weights and bias (`torch.nn.utils.fusion.fuse_conv_bn_eval`):
    the same function up to rounding (about 1e-7 in probability), without the batch norm's
    pass over the activations, which took a quarter of Conv-4's scoring time on a CPU
    (benchmarks/README.md, "Evaluation and the data path"). Changes `model` in place.
    """
    layers, fused = list(model.features), []
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
            layer = fuse_conv_bn_eval(layer, layers.pop(0))
        fused.append(layer)
    model.features = nn.Sequential(*fused)
    return model
