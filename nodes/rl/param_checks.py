"""Static checks of the PPO nodes' params together (``check_params``): what setup or a later update would refuse,
refused by ``dnne validate`` first. Each problem is ``(code, param, message)``."""
from __future__ import annotations

from typing import Any

from dnne.runtime.durations import parse_duration

Problem = tuple[str, "str | None", str]
MAX_TRIGGER_UPDATES = 10**9


def trainer_problems(params: dict[str, Any]) -> list[Problem]:
    """The trainer's checkpoint trigger, when enabled: ``epoch`` needs a whole number of updates, ``time`` a
    duration."""
    kind, value = params.get("checkpoint_trigger_type"), params.get("checkpoint_trigger_value")
    problem = None
    if kind == "epoch":
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_TRIGGER_UPDATES:
            problem = (f"checkpoint_trigger_value {value!r} must be a whole number of updates in "
                       f"[1, {MAX_TRIGGER_UPDATES}] for checkpoint_trigger_type 'epoch'")
    elif kind == "time":
        try:
            parse_duration(str(value))
        except (ValueError, OverflowError) as error:
            problem = f"checkpoint_trigger_value for checkpoint_trigger_type 'time': {error}"
    if problem is None or not params.get("checkpoint_enabled"):
        return []  # a value the trainer never reads (checkpoints off) is not an error
    return [("bad_param_value", "checkpoint_trigger_value", problem)]


def agent_problems(params: dict[str, Any]) -> list[Problem]:
    """A cnn encoder's layers: the three lists of one non-empty length, an image shape of three sizes that the
    convolutions do not shrink to nothing."""
    if params.get("encoder") != "cnn":
        return []
    channels, kernels, strides = (list(params.get(name) or []) for name in ("cnn_channels", "cnn_kernels",
                                                                           "cnn_strides"))
    if not channels or not len(channels) == len(kernels) == len(strides):
        return [("bad_param_value", "cnn_channels", f"cnn_channels, cnn_kernels and cnn_strides must be non-empty "
                 f"and of one length, got {channels}, {kernels}, {strides}")]
    shape = params.get("image_shape")
    if shape is None:
        return []
    if len(shape) != 3:
        return [("bad_param_value", "image_shape", f"image_shape {list(shape)} must be [channels, height, width]")]
    height, width = shape[1], shape[2]
    for kernel, stride in zip(kernels, strides):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        if height < 1 or width < 1:
            return [("bad_param_value", "cnn_kernels", f"the convolutions shrink the {shape[1]}x{shape[2]} image "
                     "to nothing: use smaller cnn_kernels or cnn_strides")]
    return []
