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

References:
    Finn et al., "Model-Agnostic Meta-Learning", ICML 2017 (Conv-4).
"""

from __future__ import annotations

import torch
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
