"""timm backbones: the meta-gradient against a reference loop in float64, batch-norm policy,
pretrained weights (none, an offline hub, a file the test writes), methods from the config."""

import copy
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from daml import meta
from daml.errors import DamlError
from daml.methods import Backbone, MethodSpec, method_specs
from daml.models import build_model, graph_capturable, inference_copy, load_model
from daml.models.timm_backbone import TimmBackbone
from test_meta import clone_loop_gradients

timm = pytest.importorskip("timm")
torch.set_num_threads(1)

SMALL = "test_efficientnet"  # timm's own test network: 99k parameters, BatchNormAct2d, SiLU, SE


def small(size=32, seed=0):
    return build_model(Backbone(SMALL, size), seed)


def tasks(n=3, batch=4, size=32, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x = lambda: torch.rand(batch, 3, size, size, generator=g, dtype=dtype) * 2 - 1  # noqa: E731
        y = torch.tensor([1.0, 0.0] * (batch // 2), dtype=dtype)
        out.append(meta.TaskData(f"t{i}", x(), y, x(), y.flip(0)))
    return out


def test_input_is_mapped_to_the_pretraining_normalisation():
    model = small().eval()
    config = model.net.pretrained_cfg
    faces = torch.rand(2, 3, 32, 32) * 2 - 1  # what daml.facedata.to_input gives
    pixels = (faces + 1) / 2
    expected = (pixels - torch.tensor(config["mean"]).view(1, 3, 1, 1)) / torch.tensor(config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(faces), model.net(expected).squeeze(1), atol=1e-5)
    assert "input_scale" not in model.state_dict()  # constants, not weights


@pytest.mark.parametrize("method", ["daml", "maml"])
def test_first_order_meta_gradient_equals_a_clone_loop_in_float64(method):
    model = small().double()
    reference = copy.deepcopy(model)
    batch = tasks()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    meta.step(model, optimizer, batch, meta.make_method(method, inner_lr=0.1, inner_steps=1), iteration=1)
    total = clone_loop_gradients(reference.train(), batch, method)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.allclose(p.grad, total[name], rtol=1e-9, atol=1e-12), name


def test_second_order_meta_gradient_equals_autograd_through_the_inner_step():
    model = small().double()
    batch = tasks(n=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    meta.step(model, optimizer, batch, meta.make_method("maml", inner_lr=0.1, inner_steps=1,
                                                         first_order=False), iteration=1)
    # reference: theta' written as a function of theta and differentiated end to end
    reference = small().double().train()
    params = dict(reference.named_parameters())
    buffers = {n: b.clone() for n, b in reference.named_buffers()}
    total = 0
    for task in batch:
        out = torch.func.functional_call(reference, {**params, **buffers}, (task.support,))
        loss = F.binary_cross_entropy_with_logits(out, task.support_labels)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        fast = {n: p - 0.1 * g for (n, p), g in zip(params.items(), grads)}
        out = torch.func.functional_call(reference, {**fast, **buffers}, (task.query,))
        total = total + F.binary_cross_entropy_with_logits(out, task.query_labels)
    expected = torch.autograd.grad(total, list(params.values()))
    for (name, p), e in zip(model.named_parameters(), expected):
        assert torch.allclose(p.grad, e, rtol=1e-8, atol=1e-11), name


def test_running_statistics_move_once_per_task_at_theta():
    model = small()
    batch = tasks(n=3, dtype=torch.float32)
    before = {n: b.clone() for n, b in model.named_buffers() if n.endswith("running_mean")}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    meta.step(model, optimizer, batch, meta.make_method("maml", inner_lr=0.1, inner_steps=2), iteration=1)
    counts = {int(b) for n, b in model.named_buffers() if n.endswith("num_batches_tracked")}
    assert counts == {3}  # one support pass at theta per task; adapted passes use scratch buffers
    # the first batch norm's statistics are those of the three support batches at theta
    fresh = small()
    bn = fresh.net.bn1
    mean = bn.running_mean.clone()
    for task in batch:
        with torch.no_grad():
            h = fresh.net.conv_stem(task.support * fresh.input_scale + fresh.input_shift)
        mean = (1 - bn.momentum) * mean + bn.momentum * h.mean((0, 2, 3))
    assert torch.allclose(model.net.bn1.running_mean, mean, atol=1e-5)
    assert not torch.equal(model.net.bn1.running_mean, before["net.bn1.running_mean"])


def test_a_trained_timm_model_loads_from_its_file_alone(tmp_path):
    model = small(seed=3).eval()
    torch.save({"state_dict": model.state_dict(), "image_size": 32,
                "backbone": Backbone(SMALL, 32, "hub").as_dict()}, tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path / "model.pt")  # pretrained=hub is not read: no network
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.allclose(inference_copy(loaded)(x), model(x))
    assert isinstance(loaded, TimmBackbone) and not graph_capturable(loaded)
    assert graph_capturable(build_model(16, 0))


def test_the_graph_runner_is_used_only_for_conv4(monkeypatch):
    from daml import graphed, train

    made = []
    monkeypatch.setattr(graphed.GraphedRunner, "__init__", lambda self, *a, **k: made.append("graph"))
    monkeypatch.setattr(train, "GraphedRunner", graphed.GraphedRunner)
    settings = type("S", (), {"cuda_graph": True, "support_size": 4, "query_size": 4})()
    sampler = type("T", (), {"tasks_per_batch": 2})()
    cuda = torch.device("cuda")
    for model, expected in ((build_model(16, 0), graphed.GraphedRunner), (small(), graphed.EagerRunner)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        runner = train._runner(model, optimizer, meta.make_method("daml"), None, sampler, cuda, None, settings)
        assert isinstance(runner, expected)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_file_gives_its_weights_and_drops_the_classifier(tmp_path, suffix):
    torch.manual_seed(7)
    donor = timm.create_model(SMALL)  # 1000 classes, as ImageNet weights come
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    else:
        torch.save(donor.state_dict(), path)
    model = build_model(Backbone(SMALL, 32, str(path)), seed=0, where="method_settings.b")
    for name, value in donor.state_dict().items():
        if not name.startswith("classifier"):
            assert torch.equal(model.net.state_dict()[name], value), name
    assert model.net.classifier.weight.shape[0] == 1


def test_pretrained_file_errors_name_the_key(tmp_path):
    with pytest.raises(DamlError, match=r"method_settings\.b\.pretrained: .*missing\.pth does not exist"):
        build_model(Backbone(SMALL, 32, str(tmp_path / "missing.pth")), 0, "method_settings.b")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(DamlError, match=r"use none, hub or the path of a weights file"):
        build_model(Backbone(SMALL, 32, str(tmp_path / "w.txt")), 0, "method_settings.b")
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), other)
    with pytest.raises(DamlError, match=r"does not fit test_efficientnet"):
        build_model(Backbone(SMALL, 32, str(other)), 0, "method_settings.b")
    with pytest.raises(DamlError, match=r"not a timm model"):
        build_model(Backbone("no_such_net", 32), 0, "method_settings.b")


def test_hub_weights_without_network_stop_with_the_key_and_no_traceback(tmp_path):
    """As a rule script runs it (`daml.logs.to_file`). No hub is reachable here;
    HF_HUB_OFFLINE makes huggingface_hub say so at once instead of after its retries
    (about 50 s), through the same LocalEntryNotFoundError."""
    log = tmp_path / "train.log"
    script = (
        "from daml import logs\n"
        "from daml.models import build_model, Backbone\n"
        f"with logs.to_file({str(log)!r}):\n"
        "    build_model(Backbone('test_efficientnet', 32, 'hub'), 0, 'method_settings.effnet')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert done.returncode == 1
    for text in (done.stderr, log.read_text()):
        assert "method_settings.effnet.pretrained=hub" in text
        assert "set pretrained to the file's path" in text
        assert "Traceback" not in text


def config(methods, settings=None, size=32):
    return {"methods": methods, "method_settings": settings or {}, "train": {"image_size": size}}


def test_methods_resolve_to_algorithm_backbone_and_label():
    specs = method_specs(config(["daml", "erm", "xception"], {
        "xception": {"algorithm": "erm", "backbone": "legacy_xception", "image_size": 299,
                     "label": "Xception"},
        "daml": {"backbone": SMALL},
    }))
    assert specs[0] == MethodSpec("daml", "daml", Backbone(SMALL, 32), "DAML")
    assert specs[1] == MethodSpec("erm", "erm", Backbone("conv4", 32), "ERM")
    assert specs[2] == MethodSpec("xception", "erm", Backbone("legacy_xception", 299), "Xception")
    assert MethodSpec.from_dict(specs[2].as_dict()) == specs[2]
    # a preset's baseline is switched off by leaving it out of methods
    assert [s.name for s in method_specs(config(["daml"], {"xception": {"algorithm": "erm"}}))] == ["daml"]


@pytest.mark.parametrize("methods,settings,message", [
    (["xception"], {}, r"methods: 'xception' is not one of .* method_settings\.xception\.algorithm"),
    (["daml"], {"daml": {"pretrained": "hub"}}, r"method_settings\.daml\.pretrained: Conv-4 has no pretrained"),
])
def test_method_errors_name_the_key(methods, settings, message):
    with pytest.raises(DamlError, match=message):
        method_specs(config(methods, settings))


@pytest.mark.parametrize("method,first_order,steps", [("daml", True, 2), ("maml", False, 1)])
def test_vmap_task_batching_equals_the_loop_on_a_timm_backbone_in_float64(method, first_order,
                                                                          steps):
    """`train.task_batching: vmap` runs timm's BatchNormAct2d, SiLU and squeeze-excitation."""
    batch = tasks(n=3)
    results = {}
    for batching in ("loop", "vmap"):
        model = small().double()
        chosen = meta.make_method(method, inner_lr=0.1, inner_steps=steps, first_order=first_order,
                                  task_batching=batching)
        losses, meta_loss = chosen.backward(model, batch)
        results[batching] = model, losses, meta_loss
    (loop, loop_losses, loop_meta), (model, losses, meta_loss) = results["loop"], results["vmap"]
    # through 17 layers float64 rounding grows to about 1e-12 here
    assert torch.allclose(losses, loop_losses, rtol=1e-10) and torch.allclose(meta_loss, loop_meta)
    expected = dict(loop.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in expected.values())
    for name, p in model.named_parameters():
        # biases of a batch norm before another one have a true gradient of 0: rounding
        # noise in either, about 1e-15 of the largest gradient
        assert torch.allclose(p.grad, expected[name].grad, rtol=1e-9, atol=1e-12 * scale), name
    buffers = dict(loop.named_buffers())
    for name, b in model.named_buffers():  # running statistics and the input normalisation
        assert torch.allclose(b.double(), buffers[name].double(), rtol=1e-12, atol=1e-15), name
    counts = {int(b) for n, b in model.named_buffers() if n.endswith("num_batches_tracked")}
    assert counts == {3}


def test_timm_backbones_keep_the_task_loop_unless_vmap_is_asked_for():
    from daml.batched import choose

    assert choose("auto", small(), torch.device("cuda")) == "loop"
    assert choose("vmap", small(), torch.device("cuda")) == "vmap"
    with pytest.raises(DamlError, match="grouped runs Conv-4 only"):
        choose("grouped", small(), torch.device("cpu"))
