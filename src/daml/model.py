"""Conv-4 backbone of MAML with a one-logit face-forgery head, and device/precision helpers.

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

import contextlib
import copy
import logging
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from daml.errors import DamlError
from daml.machine import cpu_model

log = logging.getLogger(__name__)

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


def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy for scoring, each convolution folded with the batch norm after it.

    In eval mode a batch norm is an affine map per channel, so it can be folded into the
    preceding convolution's weights and bias (`torch.nn.utils.fusion.fuse_conv_bn_eval`):
    the same function up to rounding (about 1e-7 in probability), without the batch norm's
    pass over the activations, which took a quarter of Conv-4's scoring time on a CPU
    (benchmarks/README.md, "Evaluation and the data path"). The model itself is untouched.
    """
    scorer = copy.deepcopy(model).eval()
    if isinstance(scorer, Conv4):
        layers, fused = list(scorer.features), []
        while layers:
            layer = layers.pop(0)
            if isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
                layer = fuse_conv_bn_eval(layer, layers.pop(0))
            fused.append(layer)
        scorer.features = nn.Sequential(*fused)
    return scorer


def build_model(image_size: int, seed: int) -> Conv4:
    """A freshly initialised Conv-4 whose weights depend only on `seed`."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    model = Conv4(image_size)
    torch.set_rng_state(generator_state)
    return model


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[Conv4, dict]:
    """Load a `model.pt` written by `daml.train` or `daml.adapt`.

    Returns:
        (model in eval mode on `device`, the whole payload dict).
    """
    path = Path(path)
    if not path.exists():
        raise DamlError(f"{path}: model file missing; run the train (or adapt) stage first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file
        raise DamlError(f"{path}: cannot read model ({error}); delete it and rerun") from error
    if "state_dict" not in payload or "image_size" not in payload:
        raise DamlError(f"{path}: not a daml model file (no state_dict/image_size); rerun training")
    model = Conv4(int(payload["image_size"]))
    model.load_state_dict(payload["state_dict"], strict=True)
    model.to(device).eval()
    return model, payload


def resolve_device(device: str) -> torch.device:
    """Map a `device` setting ("auto", "cpu", "cuda", "cuda:1") to a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DamlError(f"device={device!r} but CUDA is not available: set device to auto or cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a `precision` setting ("fp32", "bf16", "auto"); None means fp32.

    "auto" picks bf16 on a CUDA device that supports it and on a CPU with native bf16
    (AVX512-BF16/AMX), fp32 otherwise.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise DamlError(f"precision={precision!r}: use fp32, bf16 or auto")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if native_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for `dtype` on `device` (a no-op context for fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_threads(threads: int) -> None:
    """Use `threads` CPU threads for intra-op work (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def runtime_record(device: torch.device, dtype: torch.dtype | None) -> dict:
    """Where and in what precision a stage computed, for its outputs (the report shows it)."""
    processor = cpu_model()
    if device.type == "cuda":
        processor = torch.cuda.get_device_name(device)
    return {
        "device": str(device),
        "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
        "processor": processor,
        "native_bf16": native_bf16() if device.type == "cpu" else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def runtime(device: str, precision: str, threads: int = 0) -> tuple[torch.device, torch.dtype | None]:
    """A stage's `device`, `precision` and `threads` settings made real: (device, autocast dtype)."""
    configure_threads(threads)
    resolved = resolve_device(device)
    return resolved, resolve_precision(precision, resolved)
