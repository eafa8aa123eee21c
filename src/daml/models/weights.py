"""Where a backbone's starting weights come from: `pretrained: none | hub | <file>`.

Description:
    - `none`: random initialisation (Conv-4's only option, as in the paper).
    - `hub`: timm downloads the ImageNet weights of the model's pretrained tag (Hugging Face
      hub or the tag's URL) or takes them from its cache. Without network and cache this
      stops with a message naming the key and how to give a file instead.
    - a path to a `.pth`, `.pt`, `.bin` or `.safetensors` file: a state dict of the same
      timm model, loaded by timm as if downloaded (`pretrained_cfg_overlay=dict(file=...)`);
      its classifier is dropped, since ours has one logit.

    A trained `model.pt` carries every weight, so loading one never reads `pretrained`.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

from torch import nn

from daml.errors import DamlError
from daml.methods import NONE

HUB = "hub"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def weights_file(pretrained: str, where: str) -> Path | None:
    """The file `pretrained` names (None for `none` and `hub`), checked to exist."""
    if pretrained in (NONE, HUB):
        return None
    path = Path(pretrained).expanduser()
    if path.suffix not in WEIGHT_SUFFIXES:
        raise DamlError(
            f"{where}.pretrained={pretrained!r}: use none, hub or the path of a weights file "
            f"ending in {', '.join(WEIGHT_SUFFIXES)}"
        )
    if not path.is_file():
        raise DamlError(f"{where}.pretrained: {path} does not exist; give the path of a weights file")
    return path


def create_timm_model(name: str, pretrained: str, where: str) -> nn.Module:
    """`timm.create_model(name, num_classes=1)` with the starting weights `pretrained` names."""
    import timm  # slow to import: only jobs that build a timm backbone pay for it

    known = set(timm.list_models())
    if name not in known and name.split(".")[0] not in known:
        raise DamlError(f"{where}.backbone={name!r}: not a timm model (see timm.list_models())")
    file = weights_file(pretrained, where)
    options: dict = {"num_classes": 1}
    if file is not None:
        options.update(pretrained=True, pretrained_cfg_overlay={"file": str(file)})
    elif pretrained == HUB:
        options["pretrained"] = True
    try:
        return timm.create_model(name, **options)
    except (OSError, urllib.error.URLError) as error:
        # huggingface_hub's LocalEntryNotFoundError and connection errors are OSErrors
        if file is not None:
            raise DamlError(f"{where}.pretrained: cannot load {file} into {name} ({error})") from None
        raise DamlError(
            f"{where}.pretrained=hub: the weights of {name} could not be downloaded and are not "
            f"in the cache ({type(error).__name__}). On a machine without network, download them "
            f"elsewhere (timm.create_model({name.split('.')[0]!r}, pretrained=True), then save its "
            "state_dict) and set pretrained to the file's path, or use pretrained: none"
        ) from None
    except RuntimeError as error:  # a state dict of another network
        if file is None:
            raise
        raise DamlError(f"{where}.pretrained: {file} does not fit {name}: {error}") from None
