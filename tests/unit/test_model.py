"""Conv-4: shapes, feature size, eval-mode batch norm, load/save round trip."""

import pytest
import torch

from daml.errors import DamlError
from daml.models import Conv4, build_model, feature_size, load_model

torch.set_num_threads(1)


@pytest.mark.parametrize("size,expected", [(84, 64 * 5 * 5), (32, 64 * 2 * 2), (16, 64), (31, 64)])
def test_feature_size_matches_a_forward_pass(size, expected):
    model = Conv4(size)
    assert feature_size(size) == expected
    assert model.features(torch.zeros(2, 3, size, size)).flatten(1).shape[1] == expected
    assert model(torch.zeros(3, 3, size, size)).shape == (3,)


def test_too_small_input_names_the_setting():
    with pytest.raises(DamlError, match="image_size"):
        Conv4(8)


def test_blocks_follow_maml_conv4():
    model = Conv4(32)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 4 and all(c.out_channels == 64 and c.kernel_size == (3, 3) for c in convs)
    assert len(norms) == 4 and all(n.track_running_stats for n in norms)


def test_conv4_is_maml_conv4_in_its_written_order():
    """Conv-4 as MAML writes it (conv, BN, ReLU, then pool), from the model's own weights,
    gives the model's output: pooling before ReLU inside a block changes nothing."""
    import torch.nn.functional as F

    model = build_model(32, seed=3)
    model.train()
    model(torch.randn(16, 3, 32, 32) * 2 + 1)  # running stats away from their init
    model.eval()
    x = torch.randn(5, 3, 32, 32)
    h = x
    layers = list(model.features)
    for conv, norm in zip(layers[0::4], layers[1::4]):
        h = F.conv2d(h, conv.weight, conv.bias, padding=1)
        h = F.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias, False,
                         0.0, norm.eps)
        h = F.max_pool2d(F.relu(h), 2)
    expected = F.linear(h.flatten(1), model.head.weight, model.head.bias).squeeze(1)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_eval_mode_output_does_not_depend_on_the_batch():
    model = build_model(16, seed=0)
    model.train()
    model(torch.randn(32, 3, 16, 16) * 2 + 1)  # move running stats away from the init
    model.eval()
    x = torch.randn(8, 3, 16, 16)
    alone = torch.cat([model(x[i : i + 1]) for i in range(8)])
    assert torch.allclose(alone, model(x), atol=1e-5)


def test_build_model_is_seeded_and_does_not_touch_global_rng():
    state = torch.get_rng_state()
    a, b, c = build_model(16, 1), build_model(16, 1), build_model(16, 2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.head.weight, c.head.weight)


def test_load_model_round_trip(tmp_path):
    model = build_model(16, 3)
    torch.save({"state_dict": model.state_dict(), "image_size": 16}, tmp_path / "m.pt")
    loaded, payload = load_model(tmp_path / "m.pt")
    assert not loaded.training and payload["image_size"] == 16
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(DamlError, match="missing"):
        load_model(tmp_path / "absent.pt")


def test_inference_copy_folds_batch_norm_and_scores_the_same():
    from daml.models import inference_copy

    model = build_model(32, 0)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    model.train()
    x = torch.randn(6, 3, 32, 32)
    scorer = inference_copy(model)
    assert model.training  # the model is untouched
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in scorer.modules())
    with torch.no_grad():
        expected = model.eval()(x)
        assert torch.allclose(scorer(x), expected, atol=1e-5)
