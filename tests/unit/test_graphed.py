"""Step runners: the eager runner's records, and the CUDA-graph runner against the eager one,
with the tasks looped or batched (`daml.batched`).

The CUDA tests run where torch sees a GPU (the device machine; see benchmarks/README.md,
GPU) and are skipped elsewhere, CI included.
"""

import numpy as np
import pytest
import torch

from daml import meta
from daml.errors import DamlError
from daml.graphed import EagerRunner, GraphedRunner, task_inputs
from daml.meta import make_method
from daml.models import build_model
from daml.tasks import Task, TaskSampler

torch.set_num_threads(1)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SIZE, TASKS, SUPPORT, QUERY = 16, 4, 8, 8


def faces(device, seed=0):
    """120 random uint8 faces, four tasks of 15 fakes and 15 reals each."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (120, SIZE, SIZE, 3), generator=g, dtype=torch.uint8)
    tasks = [
        Task(f"t{i}", np.arange(30 * i, 30 * i + 15), np.arange(30 * i + 15, 30 * i + 30))
        for i in range(TASKS)
    ]
    return images.to(device), tasks


@pytest.fixture
def exact_cuda():
    """fp32 without TF32 and with deterministic cuDNN kernels, restored afterwards.

    Adam divides by the root of the squared gradient, so for near-zero gradients it turns
    rounding noise (TF32 alone is about 1e-3) into full-size steps of either sign, and two
    correct runs drift apart within a few iterations. Comparing the runners needs exact
    arithmetic, not a loose tolerance that would also let real mistakes pass.
    """
    backends = torch.backends
    saved = (
        backends.cudnn.allow_tf32,
        backends.cuda.matmul.allow_tf32,
        backends.cudnn.deterministic,
        backends.cudnn.benchmark,
    )
    backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = False
    backends.cudnn.deterministic, backends.cudnn.benchmark = True, False
    yield
    (
        backends.cudnn.allow_tf32,
        backends.cuda.matmul.allow_tf32,
        backends.cudnn.deterministic,
        backends.cudnn.benchmark,
    ) = saved


def train(runner_kind, method, device, iterations=12, dtype=None, lr=1e-3, inner_lr=0.01,
          batching="loop"):
    images, tasks = faces(device)
    model = build_model(SIZE, seed=0).to(device, memory_format=torch.channels_last)
    graphed = runner_kind == "graphed"
    # the same Adam for both runners (the graph needs its step count on the GPU), so that
    # only the way the step runs differs
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, capturable=device.type == "cuda")
    chosen = make_method(method, inner_lr=inner_lr, task_batching=batching)
    if graphed:
        runner = GraphedRunner(model, optimizer, chosen, images, TASKS, SUPPORT, QUERY, dtype)
    else:
        make = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else None
        runner = EagerRunner(model, optimizer, chosen, images, make)
    sampler = TaskSampler(tasks, TASKS, SUPPORT, QUERY, seed=0)
    records = []
    for iteration in range(1, iterations + 1):
        step_lr = lr if iteration <= iterations // 2 else lr / 10  # a decay mid-run
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        runner.step(sampler.sample(), iteration, step_lr)
        if iteration % 5 == 0 or iteration == iterations:
            records += runner.drain()
    weights = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    return records, weights


def test_eager_runner_drains_its_records_in_order_with_their_learning_rates():
    records, _ = train("eager", "daml", torch.device("cpu"))
    assert [r[0] for r in records] == list(range(1, 13))
    assert [r[1] for r in records] == [1e-3] * 6 + [1e-4] * 6
    assert all(len(r[2].query_losses) == TASKS for r in records)


def test_task_inputs_gathers_the_sampled_faces_as_network_input():
    images, tasks = faces(torch.device("cpu"))
    batch = TaskSampler(tasks, TASKS, SUPPORT, QUERY, seed=1).sample()
    inputs = task_inputs(batch, images)
    first = inputs[0].support[0]
    expected = images[batch[0].support[0]].permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(first, expected)
    assert inputs[0].support.is_contiguous(memory_format=torch.channels_last)


def test_graphed_runner_refuses_cpu_tensors():
    images, _ = faces(torch.device("cpu"))
    model = build_model(SIZE, seed=0)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="CUDA"):
        GraphedRunner(model, optimizer, make_method("daml"), images, TASKS, SUPPORT, QUERY, None)


def relative_error(a: dict, b: dict) -> float:
    num = sum(float((a[k] - b[k]).norm() ** 2) for k in a if a[k].is_floating_point())
    den = sum(float(b[k].norm() ** 2) for k in b if b[k].is_floating_point())
    return (num / den) ** 0.5


@cuda
@pytest.mark.parametrize(
    "method,batching",
    [("daml", "loop"), ("maml", "loop"), ("erm", "loop"), ("daml", "grouped"),
     ("maml", "grouped"), ("daml", "vmap")],
)
def test_graph_replay_trains_like_the_eager_step(method, batching, exact_cuda):
    device = torch.device("cuda")
    eager_records, eager_weights = train("eager", method, device, batching=batching)
    graph_records, graph_weights = train("graphed", method, device, batching=batching)
    # same iterations, tasks and learning rates (a decay at iteration 7, after capture)
    assert [(r[0], r[1], r[2].tasks) for r in graph_records] == [
        (r[0], r[1], r[2].tasks) for r in eager_records
    ]
    # same losses and weights: stale indices, a learning rate baked into the graph or a
    # step replayed twice would each move them far more than this
    eager_losses = np.array([r[2].query_losses for r in eager_records])
    graph_losses = np.array([r[2].query_losses for r in graph_records])
    assert np.allclose(graph_losses, eager_losses, rtol=1e-4, atol=1e-6)
    assert relative_error(graph_weights, eager_weights) < 1e-4
    # and training moved the weights: the comparison is not between two untouched models
    untouched = {k: v.float() for k, v in build_model(SIZE, seed=0).state_dict().items()}
    assert relative_error(graph_weights, untouched) > 1e-3


@cuda
def test_graph_replay_in_bf16_stays_close_to_fp32(exact_cuda):
    device = torch.device("cuda")
    _, fp32 = train("graphed", "daml", device)
    _, bf16 = train("graphed", "daml", device, dtype=torch.bfloat16)
    assert relative_error(bf16, fp32) < 2e-2


@cuda
def test_graph_replay_stops_at_the_first_non_finite_loss():
    with pytest.raises(DamlError, match=r"non-finite loss at iteration 1 in task 't\d'"):
        train("graphed", "daml", torch.device("cuda"), inner_lr=1e38)


@cuda
@pytest.mark.parametrize("batching", ["grouped", "vmap"])
def test_batched_pass_on_cuda_equals_the_loop(batching, exact_cuda):
    """One meta-gradient on the GPU, batched and looped: equal in float64 (the order of
    cuDNN's sums cannot matter there), the same losses within fp32 rounding."""
    device = torch.device("cuda")
    images, tasks = faces(device)
    inputs = task_inputs(TaskSampler(tasks, TASKS, SUPPORT, QUERY, seed=0).sample(), images)
    for dtype in (torch.float64, torch.float32):
        batch = [
            meta.TaskData(t.name, *(x.to(dtype) for x in (t.support, t.support_labels, t.query,
                                                          t.query_labels)))
            for t in inputs
        ]
        results = {}
        for way in ("loop", batching):
            model = build_model(SIZE, seed=0).to(device, dtype, memory_format=torch.channels_last)
            losses, meta_loss = make_method("daml", inner_lr=0.1, task_batching=way).backward(
                model, batch
            )
            results[way] = model, losses, meta_loss
        (loop, loop_losses, loop_meta), (model, losses, meta_loss) = (
            results["loop"], results[batching]
        )
        if dtype == torch.float32:
            assert torch.allclose(losses, loop_losses, rtol=1e-4, atol=1e-6)
            continue
        assert torch.allclose(losses, loop_losses, rtol=1e-12)
        assert torch.allclose(meta_loss, loop_meta, rtol=1e-12)
        expected = dict(loop.named_parameters())
        scale = max(float(p.grad.abs().max()) for p in expected.values())
        for name, p in model.named_parameters():
            assert torch.allclose(p.grad, expected[name].grad, rtol=1e-9, atol=1e-12 * scale), name
        buffers = dict(loop.named_buffers())
        for name, b in model.named_buffers():
            assert torch.allclose(b.double(), buffers[name].double(), rtol=1e-12, atol=1e-15), name


@cuda
@pytest.mark.parametrize("batching", ["grouped", "vmap"])
def test_batched_graph_replay_starts_where_the_looped_eager_step_does(batching, exact_cuda):
    """The batched pass captured in GraphedRunner: same records, and the first iteration's
    losses (before any Adam step has amplified rounding) those of the eager per-task loop."""
    device = torch.device("cuda")
    loop_records, _ = train("eager", "daml", device)
    graph_records, _ = train("graphed", "daml", device, batching=batching)
    assert [(r[0], r[1], r[2].tasks) for r in graph_records] == [
        (r[0], r[1], r[2].tasks) for r in loop_records
    ]
    assert np.allclose(graph_records[0][2].query_losses, loop_records[0][2].query_losses,
                       rtol=1e-4, atol=1e-6)
    assert all(np.isfinite(r[2].query_losses).all() for r in graph_records)
