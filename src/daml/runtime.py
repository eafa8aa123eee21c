"""Where and in what precision a stage computes: device, autocast dtype, threads, and the record.

Description:
    Every stage that runs a model (train, adapt, evaluate) turns its `device`, `precision`
    and `threads` settings into a torch device and an autocast dtype here, and writes
    `runtime_record` into its outputs so that the report can say where each number came
    from. "auto" precision is bf16 where the hardware computes it natively and fp32
    otherwise; the two give different numbers (README, "What the default run gives").
"""

from __future__ import annotations

import contextlib

import torch

from daml.errors import DamlError
from daml.machine import cpu_model


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
