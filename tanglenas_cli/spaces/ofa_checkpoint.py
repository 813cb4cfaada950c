"""Initialising the ``mobilenetv3`` supernet from a released Once-for-All MobileNetV3 checkpoint.

OFA publishes its elastic MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.0``: depth {2,3,4}, expand
{3,4,6}, kernel {3,5,7}, width 1.0) as a ``torch.save``'d dict holding ``state_dict``. Its parameter
names map one to one onto this package's supernet (same shapes: the largest kernel, the widest
channels, OFA's 7to5 / 5to3 kernel transforms, applied the same way). Blocks are numbered globally in
OFA (block 0 is the fixed first block, then 4 per stage); older releases name each block's layer
``mobile_inverted_conv`` instead of ``conv``. A classifier for another number of classes is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tanglenas_cli.errors import UserError

BLOCKS_PER_STAGE = 4
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
# (OFA name pattern, this package's name template); \1.. are the pattern's groups
_FIXED = [
    (r"first_conv\.conv\.weight", "stem.weight"),
    (rf"first_conv\.bn\.{_BN}", r"stem_norm.\1"),
    (r"blocks\.0\.conv\.depth_conv\.conv\.weight", "first_block.depthwise.weight"),
    (rf"blocks\.0\.conv\.depth_conv\.bn\.{_BN}", r"first_block.depthwise_norm.norm.\1"),
    (r"blocks\.0\.conv\.point_linear\.conv\.weight", "first_block.project.weight"),
    (rf"blocks\.0\.conv\.point_linear\.bn\.{_BN}", r"first_block.project_norm.\1"),
    (r"final_expand_layer\.conv\.weight", "final_expand.weight"),
    (rf"final_expand_layer\.bn\.{_BN}", r"final_norm.\1"),
    (r"feature_mix_layer\.conv\.weight", "feature_mix.weight"),
    (r"classifier\.linear\.(weight|bias)", r"classifier.\1"),
]
_BLOCK = [  # inside blocks.N.conv. (N >= 1); the template gets the stage-relative prefix
    (r"inverted_bottleneck\.conv\.conv\.weight", "expand_conv.weight"),
    (rf"inverted_bottleneck\.bn\.bn\.{_BN}", r"expand_norm.norm.\1"),
    (r"depth_conv\.conv\.conv\.weight", "depthwise.weight"),
    (r"depth_conv\.conv\.(\d)to(\d)_matrix", r"depthwise.transforms.\1to\2"),
    (rf"depth_conv\.bn\.bn\.{_BN}", r"depthwise_norm.norm.\1"),
    (r"depth_conv\.se\.fc\.(reduce|expand)\.(weight|bias)", r"se.\1.\2"),
    (r"point_linear\.conv\.conv\.weight", "project.weight"),
    (rf"point_linear\.bn\.bn\.{_BN}", r"project_norm.\1"),
]


def ofa_to_supernet_name(name: str) -> str | None:
    """Return this package's supernet name for the OFA parameter ``name`` (None: not a known name)."""
    name = name.removeprefix("module.").replace(".mobile_inverted_conv.", ".conv.")
    for pattern, template in _FIXED:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, template, name)
    found = re.fullmatch(r"blocks\.(\d+)\.conv\.(.+)", name)
    if found is None or int(found.group(1)) == 0:
        return None
    stage, block = divmod(int(found.group(1)) - 1, BLOCKS_PER_STAGE)
    for pattern, template in _BLOCK:
        if re.fullmatch(pattern, found.group(2)):
            return f"stages.{stage}.blocks.{block}." + re.sub(pattern, template, found.group(2))
    return None


def read_ofa_state(path: Path) -> dict[str, torch.Tensor]:
    """Return the tensors of an OFA checkpoint file (``{"state_dict": ...}`` or a bare state dict)."""
    if not path.is_file():
        raise UserError(f"OFA checkpoint not found: {path}")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling failure: not a checkpoint
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint ({str(error).splitlines()[0][:80]})"
        ) from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds no state dict of tensors (an OFA checkpoint has 'state_dict')")
    return state


def load_ofa_checkpoint(model: nn.Module, path: Path) -> dict[str, Any]:
    """Copy an OFA MobileNetV3 checkpoint into the ``mobilenetv3`` supernet ``model``; return a summary.

    Every supernet tensor but the architecture logits must come from the file with the same shape
    (the paper variant at width 1.0); otherwise nothing is changed and a UserError names the first
    mismatch. A classifier of another size is left as initialised.
    """
    state = read_ofa_state(Path(path))
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in state.items():
        ours = ofa_to_supernet_name(name)
        if ours is None:
            unknown.append(name)
        else:
            mapped[ours] = tensor
    if unknown:
        raise UserError(f"{path} is not an OFA MobileNetV3 checkpoint: unknown parameter {unknown[0]!r}")
    skipped = []
    for name, tensor in target.items():
        if name.startswith("choices.") or name.endswith("num_batches_tracked"):
            continue
        if name not in mapped:
            raise UserError(f"{path} lacks {name!r} of this supernet (OFA MobileNetV3 d234-e346-k357-w1.0?)")
        if mapped[name].shape != tensor.shape:
            if name.startswith("classifier."):
                skipped.append(name)
                continue
            raise UserError(
                f"{path}: {name} has shape {tuple(mapped[name].shape)} in the file but "
                f"{tuple(tensor.shape)} in this supernet (use variant=paper, width_mult=1.0)"
            )
    with torch.no_grad():
        for name, tensor in target.items():
            if name in mapped and name not in skipped and not name.startswith("choices."):
                tensor.copy_(mapped[name].to(tensor.dtype))
    loaded = sum(1 for name in target if name in mapped and name not in skipped)
    summary: dict[str, Any] = {"init_from": str(path), "tensors_loaded": loaded}
    if skipped:
        summary["classifier"] = "kept as initialised: the checkpoint's has another number of classes"
    return summary
