"""How a backbone (`daml.methods.Backbone`) is built, loaded, scored and run on a GPU.

Description:
    The paper's Conv-4 (`daml.models.conv4`) or any timm model
    (`daml.models.timm_backbone`). A trained `model.pt` records its backbone, so everything
    downstream (fine-tuning, scoring, `load_model`) rebuilds the same network from the file
    alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping


import torch
from torch import nn

from daml.errors import DamlError
from daml.models.conv4 import Conv4, fold_batch_norm
from daml.methods import CONV4, Backbone

def build_model(backbone: Backbone | int, seed: int, where: str = "backbone") -> nn.Module:
    """A freshly initialised model whose random weights depend only on `seed`.

    `backbone` may be an image size, meaning Conv-4 at that size. The global RNG is left as
    it was.
    """
    if isinstance(backbone, int):
        backbone = Backbone(CONV4, backbone)
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        if backbone.name == CONV4:
            return Conv4(backbone.image_size)
        from daml.models.timm_backbone import TimmBackbone

        return TimmBackbone(backbone.name, backbone.image_size, backbone.pretrained, where)
    finally:
        torch.set_rng_state(generator_state)


def model_backbone(payload: Mapping) -> Backbone:
    """The backbone a `model.pt` was trained with (files from before backbones: Conv-4)."""
    if "backbone" in payload:
        return Backbone(**payload["backbone"])
    return Backbone(CONV4, int(payload["image_size"]))


def load_model(path: str | Path, device: torch.device | str = "cpu",
               adapted: str | None = None) -> tuple[nn.Module, dict]:
    """Load a `model.pt` of `daml.train`, or a fine-tuned model from `models.pt` of `daml.evaluate`.

    The network is rebuilt from the file's backbone record with no pretrained weights (the
    file holds all of them), so loading needs no network.

    Arguments:
        path: the file.
        device: where the model goes.
        adapted: for a `models.pt`, which fine-tuned model: its key
            `"{target}/shots{k}/episode{e}"`; may be left out when only one has weights.

    Returns:
        (model in eval mode on `device`, the payload: a model.pt's dict, or for a models.pt
        its top-level record with the chosen entry's `state_dict`, `adapt` and `adapted` key).
    """
    path = Path(path)
    if not path.exists():
        raise DamlError(f"{path}: model file missing; run the train (or evaluate) stage first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file
        raise DamlError(f"{path}: cannot read model ({error}); delete it and rerun") from error
    if isinstance(payload, dict) and "models" in payload:
        payload = _adapted_entry(path, payload, adapted)
    elif adapted is not None:
        raise DamlError(f"{path}: a trained model.pt holds one model; `adapted` ({adapted!r}) "
                        "names a fine-tuned one of an evaluate stage's models.pt")
    if not isinstance(payload, dict) or "state_dict" not in payload or "image_size" not in payload:
        raise DamlError(f"{path}: not a daml model file (no state_dict/image_size); rerun training")
    backbone = model_backbone(payload)
    model = build_model(Backbone(backbone.name, backbone.image_size), seed=0, where=str(path))
    model.load_state_dict(payload["state_dict"], strict=True)
    model.to(device).eval()
    return model, payload


def _adapted_entry(path: Path, payload: dict, adapted: str | None) -> dict:
    """A models.pt's record merged with one of its fine-tuned models (`load_model`)."""
    with_weights = [key for key, entry in payload["models"].items() if "state_dict" in entry]
    if adapted is None:
        if len(with_weights) != 1:
            raise DamlError(
                f"{path} holds {len(with_weights)} fine-tuned models with weights: name one "
                f"(`--adapted KEY`), one of {with_weights[:12]}"
                + (" (evaluate.save_weights: none kept no weights)" if not with_weights else "")
            )
        adapted = with_weights[0]
    if adapted not in with_weights:
        raise DamlError(f"{path}: no fine-tuned weights under {adapted!r}; it has "
                        f"{with_weights[:12]} (evaluate.save_weights says which are kept)")
    entry = payload["models"][adapted]
    record = {k: v for k, v in payload.items() if k != "models"}
    return {**record, "state_dict": entry["state_dict"], "adapt": entry["adapt"],
            "adapted": adapted}


def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy for scoring; Conv-4's batch norms folded into its convolutions.

    The model itself is untouched. timm models are scored as they are.
    """
    scorer = copy.deepcopy(model).eval()
    return fold_batch_norm(scorer) if isinstance(scorer, Conv4) else scorer


def graph_capturable(model: nn.Module) -> bool:
    """Whether training may replay this backbone's iteration as a CUDA graph (`daml.graphed`).

    Conv-4 only: its captured step has been checked against the eager one on a GPU. timm
    models train eagerly until a GPU run of tests/unit/test_graphed.py covers them
    (docs/architecture.md, "Backbones").
    """
    return isinstance(model, Conv4)
