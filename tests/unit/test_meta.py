"""Meta-steps against independent computations (hand-worked gradients, l2l-style loop)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from daml import meta
from daml.errors import DamlError
from daml.models import build_model

torch.set_num_threads(1)


class Logistic(nn.Module):
    """logit = x . w + b: gradients and Hessians are easy to write by hand."""

    def __init__(self, dim):
        super().__init__()
        self.lin = nn.Linear(dim, 1).double()

    def forward(self, x):
        return self.lin(x).squeeze(1)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def grad_and_hessian(theta, x, y):
    """Mean BCE of logistic regression with bias: gradient and Hessian in (w, b)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    p = sigmoid(xb @ theta)
    grad = xb.T @ (p - y) / len(y)
    hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return grad, hess, loss


def make_tasks(dim=3, n_tasks=3, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for i in range(n_tasks):
        xs, xq = (
            torch.randn(size, dim, generator=g).double(),
            torch.randn(size, dim, generator=g).double(),
        )
        ys = torch.tensor([1.0, 0.0] * (size // 2)).double()
        tasks.append(meta.TaskData(f"t{i}", xs, ys, xq, ys.flip(0)))
    return tasks


def meta_grad(model, tasks, method, alpha, first_order, steps=1, daml_weight="literal"):
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    chosen = meta.make_method(method, daml_weight, alpha, steps, first_order)
    record = meta.step(model, opt, tasks, chosen, iteration=1)
    grad = np.concatenate([model.lin.weight.grad.numpy().ravel(), model.lin.bias.grad.numpy()])
    return grad, record


def hand_weight(method, daml_weight, loss):
    """The task weight worked out by hand: dL*sigmoid(L)/dL, or sigmoid(L) held constant."""
    s = sigmoid(loss)
    if method == "maml":
        return 1.0
    return s + loss * s * (1 - s) if daml_weight == "literal" else s


@pytest.mark.parametrize(
    "method,daml_weight", [("maml", "literal"), ("daml", "literal"), ("daml", "detached")]
)
@pytest.mark.parametrize("first_order", [True, False])
def test_meta_gradient_matches_hand_computation(method, daml_weight, first_order):
    torch.manual_seed(0)
    model = Logistic(3)
    tasks = make_tasks()
    theta = np.concatenate(
        [model.lin.weight.detach().numpy().ravel(), model.lin.bias.detach().numpy()]
    )
    alpha = 0.7
    expected = np.zeros_like(theta)
    weights = []
    for t in tasks:
        g_s, h_s, _ = grad_and_hessian(theta, t.support.numpy(), t.support_labels.numpy())
        adapted = theta - alpha * g_s
        g_q, _, loss_q = grad_and_hessian(adapted, t.query.numpy(), t.query_labels.numpy())
        if not first_order:
            g_q = (np.eye(len(theta)) - alpha * h_s) @ g_q
        weights.append(hand_weight(method, daml_weight, loss_q))
        expected += weights[-1] * g_q
    got, record = meta_grad(model, tasks, method, alpha, first_order, daml_weight=daml_weight)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # history.csv records the weight the gradient applied (fp32 losses)
    np.testing.assert_allclose(record.weights, weights, rtol=1e-5)


def test_sum_reduction_is_eq3_in_the_inner_step_and_in_the_daml_weight():
    """Eq. 3's L is a sum: the inner step and the outer weight both see n times the mean."""
    torch.manual_seed(2)
    model = Logistic(3)
    tasks = make_tasks(size=8)
    theta = np.concatenate(
        [model.lin.weight.detach().numpy().ravel(), model.lin.bias.detach().numpy()]
    )
    alpha, expected, weights = 0.05, 0, []
    for t in tasks:
        n_s, n_q = len(t.support_labels), len(t.query_labels)
        g_s = grad_and_hessian(theta, t.support.numpy(), t.support_labels.numpy())[0] * n_s
        g_q, _, loss_q = grad_and_hessian(theta - alpha * g_s, t.query.numpy(),
                                          t.query_labels.numpy())
        weights.append(hand_weight("daml", "literal", loss_q * n_q))
        expected = expected + weights[-1] * g_q * n_q
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    record = meta.step(model, opt, tasks, meta.make_method("daml", inner_lr=alpha,
                                                           loss_reduction="sum"), 1)
    got = np.concatenate([model.lin.weight.grad.numpy().ravel(), model.lin.bias.grad.numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(record.weights, weights, rtol=1e-5)
    assert min(record.query_losses) > 2  # sums of 8 losses: the weights sit near 1
    with pytest.raises(DamlError, match="loss_reduction"):
        meta.make_method("daml", loss_reduction="max")


def test_two_inner_steps_first_order_by_hand():
    torch.manual_seed(1)
    model = Logistic(2)
    tasks = make_tasks(dim=2, n_tasks=2)
    theta = np.concatenate(
        [model.lin.weight.detach().numpy().ravel(), model.lin.bias.detach().numpy()]
    )
    expected = 0
    for t in tasks:
        adapted = theta.copy()
        for _ in range(2):
            adapted = (
                adapted
                - 0.5 * grad_and_hessian(adapted, t.support.numpy(), t.support_labels.numpy())[0]
            )
        expected = expected + grad_and_hessian(adapted, t.query.numpy(), t.query_labels.numpy())[0]
    np.testing.assert_allclose(
        meta_grad(model, tasks, "maml", 0.5, True, steps=2)[0], expected, rtol=1e-10
    )


@pytest.mark.parametrize("daml_weight", ["literal", "detached"])
def test_recorded_weights_are_the_autograd_gradient_of_the_objective(daml_weight):
    losses = torch.tensor([0.05, 0.7, 1.3, 2.5, 9.0], dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(losses)
    # the objective as eq. 5 prints it, or with sigmoid(L) as a constant coefficient
    formula = losses * (s if daml_weight == "literal" else s.detach())
    (expected,) = torch.autograd.grad(formula.sum(), losses)
    weights = meta.task_weights(meta.outer_objective("daml", daml_weight), losses.detach())
    assert torch.allclose(weights, expected)
    if daml_weight == "literal":
        # s + L s (1 - s): 0.5 for an easy task, above 1 once L > 1.3
        assert torch.allclose(weights, (s + losses * s * (1 - s)).detach())
        assert weights[0] < 0.55 and weights[3] > 1.0
    else:
        assert torch.allclose(weights, s.detach()) and (weights < 1).all()
    assert meta.task_weights(meta.outer_objective("maml"), losses).eq(1).all()
    assert meta.task_weights(None, losses).eq(1).all()


def test_unknown_method_or_weight_names_the_key():
    with pytest.raises(DamlError, match="methods"):
        meta.outer_objective("reptile")
    with pytest.raises(DamlError, match="train.daml_weight"):
        meta.outer_objective("daml", "half")


def conv_tasks(n=3, size=8, image=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([1.0, 0.0] * (size // 2))
    return [
        meta.TaskData(
            f"t{i}",
            torch.randn(size, 3, image, image, generator=g),
            labels,
            torch.randn(size, 3, image, image, generator=g),
            labels.flip(0),
        )
        for i in range(n)
    ]


def gradient_only(model, tasks, method, inner_steps):
    """One first-order meta-step at inner lr 0.1 whose optimizer does not move the weights."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    meta.step(model, optimizer, tasks, meta.make_method(method, inner_lr=0.1, inner_steps=inner_steps),
              iteration=1)


def clone_loop_gradients(reference, tasks, method, inner_lr=0.1) -> dict[str, torch.Tensor]:
    """The first-order meta-gradient the learn2learn way: a deep copy per task, adapted in
    place with autograd, its query gradient weighted by d objective / d L (DAML literal or
    MAML), summed over tasks. `reference` is not changed."""
    total = {name: torch.zeros_like(p) for name, p in reference.named_parameters()}
    for task in tasks:
        clone = copy.deepcopy(reference)
        loss = F.binary_cross_entropy_with_logits(clone(task.support), task.support_labels)
        grads = torch.autograd.grad(loss, list(clone.parameters()))
        with torch.no_grad():
            for p, g in zip(clone.parameters(), grads):
                p -= inner_lr * g
        query = F.binary_cross_entropy_with_logits(clone(task.query), task.query_labels)
        s = torch.sigmoid(query.detach())
        weight = s + query.detach() * s * (1 - s) if method == "daml" else 1.0
        (query * weight).backward()
        for name, p in clone.named_parameters():
            total[name] += p.grad
    return total


def test_first_order_conv4_matches_l2l_style_clone_loop():
    model = build_model(16, seed=0)
    reference = copy.deepcopy(model)
    tasks = conv_tasks()
    gradient_only(model, tasks, "daml", inner_steps=1)
    expected = clone_loop_gradients(reference, tasks, "daml")
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], rtol=1e-4, atol=1e-6), name


def test_running_stats_updated_once_per_task_at_theta():
    model = build_model(16, seed=0)
    tasks = conv_tasks(n=3)
    gradient_only(model, tasks, "maml", inner_steps=2)
    bn = model.features[1]
    assert int(bn.num_batches_tracked) == 3
    # expected: momentum updates with each support batch's first-layer statistics at theta
    fresh = build_model(16, seed=0)
    mean = torch.zeros(64)
    for t in tasks:
        with torch.no_grad():
            h = fresh.features[0](t.support)
        mean = 0.9 * mean + 0.1 * h.mean((0, 2, 3))
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)


def test_maml_with_zero_inner_lr_is_supervised_training_on_queries():
    model = build_model(16, seed=0)
    twin = copy.deepcopy(model)
    # SGD, not Adam: conv biases before batch norm have a zero true gradient, and Adam
    # would blow their rounding noise (which depends on summation order) up to lr-sized steps
    opt_a = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_b = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for it in range(3):
        tasks = conv_tasks(seed=it)
        meta.step(model, opt_a, tasks, meta.make_method("maml", inner_lr=0.0), iteration=it)
        opt_b.zero_grad()
        sum(
            F.binary_cross_entropy_with_logits(twin(t.query), t.query_labels) for t in tasks
        ).backward()
        opt_b.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_erm_step_is_one_supervised_step_on_the_pooled_batch():
    model = build_model(16, seed=0)
    twin = copy.deepcopy(model)
    tasks = conv_tasks()
    record = meta.step(
        model, torch.optim.SGD(model.parameters(), lr=0.1), tasks, meta.make_method("erm"), 1
    )
    x = torch.cat([torch.cat([t.support, t.query]) for t in tasks])
    y = torch.cat([torch.cat([t.support_labels, t.query_labels]) for t in tasks])
    loss = F.binary_cross_entropy_with_logits(twin(x), y)
    loss.backward()
    assert record.tasks == ["pooled"] and np.isclose(record.meta_loss, loss.item())
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.allclose(p, q - 0.1 * q.grad, atol=1e-6)


def test_non_finite_loss_names_iteration_and_task():
    model = build_model(16, seed=0)
    with pytest.raises(DamlError, match=r"iteration 7 in task 't0'"):
        meta.step(
            model,
            torch.optim.SGD(model.parameters(), lr=0.0),
            conv_tasks(),
            meta.make_method("daml", inner_lr=1e38),
            iteration=7,
        )


# --- the batched pass (daml.batched) against the task loop ---------------------------------

BATCHED_CASES = [  # (method, daml_weight, first_order, inner_steps, loss_reduction)
    ("daml", "literal", True, 1, "mean"),
    ("daml", "literal", False, 1, "mean"),
    ("daml", "detached", True, 1, "mean"),
    ("maml", "literal", True, 1, "mean"),
    ("maml", "literal", False, 1, "mean"),
    ("maml", "literal", True, 2, "mean"),
    ("daml", "literal", False, 2, "sum"),
]


def float64_tasks(n=3, seed=0):
    return [
        meta.TaskData(t.name, *(x.double() for x in (t.support, t.support_labels, t.query,
                                                      t.query_labels)))
        for t in conv_tasks(n=n, seed=seed)
    ]


def backward_in_float64(batching, tasks, case, model=None):
    """One meta-gradient of a fresh float64 Conv-4: (model after it, losses, meta-loss)."""
    method, daml_weight, first_order, steps, reduction = case
    model = model or build_model(16, seed=0).double()
    chosen = meta.make_method(method, daml_weight, 0.1 if reduction == "mean" else 0.01, steps,
                              first_order, reduction, task_batching=batching)
    model.zero_grad(set_to_none=True)
    losses, meta_loss = chosen.backward(model, tasks)
    return model, losses, meta_loss


def assert_same_step(model, losses, meta_loss, loop, loop_losses, loop_meta_loss):
    """Same losses, meta-loss, gradient of every parameter and batch-norm buffers."""
    assert losses.dtype == torch.float64 and losses.shape == loop_losses.shape
    assert torch.allclose(losses, loop_losses, rtol=1e-12, atol=0)
    assert torch.allclose(meta_loss, loop_meta_loss, rtol=1e-12, atol=0)
    expected = dict(loop.named_parameters())
    for name, p in model.named_parameters():
        # atol: conv biases before a batch norm have a true gradient of 0 (rounding noise)
        assert torch.allclose(p.grad, expected[name].grad, rtol=1e-10, atol=1e-12), name
    buffers = dict(loop.named_buffers())
    for name, b in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            assert torch.equal(b, buffers[name]), name
        else:
            assert torch.allclose(b, buffers[name], rtol=1e-12, atol=1e-15), name


@pytest.mark.parametrize("batching", ["grouped", "vmap"])
@pytest.mark.parametrize("case", BATCHED_CASES, ids=lambda c: "-".join(map(str, c)))
def test_batched_meta_gradient_equals_the_task_loop_in_float64(batching, case):
    tasks = float64_tasks()
    loop, loop_losses, loop_meta = backward_in_float64("loop", tasks, case)
    model, losses, meta_loss = backward_in_float64(batching, tasks, case)
    assert_same_step(model, losses, meta_loss, loop, loop_losses, loop_meta)
    # the tasks differ, so DAML's weights d objective / d L_i differ between them too
    assert len(set(losses.tolist())) == len(tasks)
    # running statistics moved once per task at theta, as in the loop
    assert int(model.features[1].num_batches_tracked) == len(tasks)


@pytest.mark.parametrize("batching", ["grouped", "vmap"])
def test_batched_first_order_equals_the_l2l_style_clone_loop(batching):
    tasks = float64_tasks(n=4, seed=1)
    reference = build_model(16, seed=0).double()
    expected = clone_loop_gradients(reference, tasks, "daml")
    model, _, _ = backward_in_float64(batching, tasks, BATCHED_CASES[0])
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], rtol=1e-9, atol=1e-12), name


@pytest.mark.parametrize("batching", ["grouped", "vmap"])
def test_batched_steps_keep_the_loop_running_statistics_over_iterations(batching):
    """Three SGD steps in a row: the weights and buffers go where the loop's go."""
    models = {b: build_model(16, seed=0).double() for b in ("loop", batching)}
    for b, model in models.items():
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for it in range(3):
            meta.step(model, optimizer, float64_tasks(seed=it),
                      meta.make_method("daml", inner_lr=0.1, task_batching=b), it)
    loop, ours = (dict(models[b].state_dict()) for b in ("loop", batching))
    for name, value in ours.items():
        assert torch.allclose(value.double(), loop[name].double(), rtol=1e-10, atol=1e-12), name


def test_erm_ignores_task_batching_and_unknown_batchings_name_the_key():
    for batching in ("grouped", "vmap"):
        assert meta.make_method("erm", task_batching=batching).backward.func is meta.erm_backward
    assert meta.make_method("daml").backward.func is meta.meta_backward  # the loop by default
    with pytest.raises(DamlError, match="train.task_batching"):
        meta.make_method("daml", task_batching="threads")


def test_task_batching_auto_is_grouped_for_conv4_on_cuda_only():
    from daml.batched import choose

    conv4, cpu, gpu = build_model(16, seed=0), torch.device("cpu"), torch.device("cuda")
    assert choose("auto", conv4, cpu) == "loop"
    assert choose("auto", conv4, gpu) == "grouped"
    assert [choose(b, conv4, cpu) for b in ("loop", "grouped", "vmap")] == ["loop", "grouped",
                                                                             "vmap"]
    with pytest.raises(DamlError, match="train.task_batching"):
        choose("threads", conv4, cpu)
    conv4.features[1].momentum = None  # a cumulative average cannot be folded afterwards
    for batching in ("grouped", "vmap", "auto"):
        with pytest.raises(DamlError, match="momentum None"):
            choose(batching, conv4, gpu)
    assert choose("loop", conv4, gpu) == choose("auto", conv4, cpu) == "loop"


def test_grouped_forward_is_conv4_per_task():
    from daml.models.conv4 import grouped_forward

    model = build_model(16, seed=0).double().train()
    params = {n: torch.stack([p + 0.01 * i for i in range(3)]) for n, p in model.named_parameters()}
    images = [t.support for t in float64_tasks()]
    with torch.no_grad():
        got = grouped_forward(model, params, None, torch.cat(images, dim=1), 3)
        for i, x in enumerate(images):
            weights = {n: p[i] for n, p in params.items()}
            expected = torch.func.functional_call(model, weights, (x,))
            assert torch.allclose(got[i], expected, rtol=1e-12, atol=1e-12)
