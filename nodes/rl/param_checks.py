"""Static checks of the PPO nodes' params together (``check_params``): what setup or a later update would refuse,
refused by ``dnne validate`` first. Each problem is ``(code, param, message)``."""
from __future__ import annotations

from typing import Any

from dnne.runtime.durations import parse_duration

Problem = tuple[str, "str | None", str]
MAX_TRIGGER_UPDATES = 10**9


def trainer_problems(params: dict[str, Any], run: dict[str, Any] | None) -> list[Problem]:
    """The trainer's params against the run section ``run`` (the whole graph's, also when a part of a split graph
    is validated): a ``linear`` learning-rate schedule needs a length (``run.max_steps`` or
    ``run.max_iterations``) when the run trains; the checkpoint trigger, when enabled: ``epoch`` needs a whole
    number of updates, ``time`` a duration. ``run`` is ``None`` when the file's run section is unreadable."""
    problems: list[Problem] = []
    if run is None:
        return _trigger_problems(params)
    training = run.get("mode") != "play"  # play, eval and export leave the trainer out
    unbounded = run.get("max_steps") is None and run.get("max_iterations") is None  # a bad length is the run's error
    if training and unbounded and params.get("lr_schedule") == "linear":
        problems.append(("bad_param_value", "lr_schedule", ("lr_schedule 'linear' anneals to 0 at the end of the "
                         "run, so the run needs a length: set run.max_steps or run.max_iterations (--max-steps)")))
    return problems + _trigger_problems(params)


def _trigger_problems(params: dict[str, Any]) -> list[Problem]:
    """The checkpoint trigger, when enabled: ``epoch`` needs a whole number of updates, ``time`` a duration."""
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
        return [("bad_param_value", "cnn_channels", (f"cnn_channels, cnn_kernels and cnn_strides must be non-empty "
                 f"and of one length, got {channels}, {kernels}, {strides}"))]
    shape = params.get("image_shape")
    if shape is None:
        return []
    if len(shape) != 3:
        return [("bad_param_value", "image_shape", f"image_shape {list(shape)} must be [channels, height, width]")]
    height, width = shape[1], shape[2]
    for kernel, stride in zip(kernels, strides):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        if height < 1 or width < 1:
            return [("bad_param_value", "cnn_kernels", (f"the convolutions shrink the {shape[1]}x{shape[2]} image "
                     "to nothing: use smaller cnn_kernels or cnn_strides"))]
    return []


def agent_wiring_problems(params: dict[str, Any], wiring: Any) -> list[Problem]:
    """What the agent's setup would refuse, found from its links and the env's spaces where validation knows them
    (``dnne.runtime.wiring``): a recurrent core without a ``dones`` link (its state would never be reset), an
    ``action_space`` of the other kind than the env's, sizes that differ from the env's."""
    from ..envs.spaces import Box, Discrete

    problems: list[Problem] = []
    if params.get("recurrent", "none") != "none" and not wiring.linked("dones"):
        problems.append(("missing_dones_link", "recurrent", (f"recurrent is {params['recurrent']!r} but 'dones' is "
                         "not linked: link the step node's dones to this agent's dones, so its state is reset where "
                         "an episode ends")))
    act_space = wiring.upstream("action_space", "observations")
    obs_space = wiring.upstream("observation_space", "observations")
    kind = params.get("action_space")
    if isinstance(act_space, (Box, Discrete)):
        env_kind = "discrete" if isinstance(act_space, Discrete) else "continuous"
        if kind is not None and kind != env_kind:
            problems.append(("action_space_mismatch", "action_space", (f"action_space is {kind!r} but the env's "
                             f"action space is {env_kind}: set action_space to {env_kind!r} (or leave it out)")))
        size = act_space.n if isinstance(act_space, Discrete) else act_space.dim
        given = params.get("output_size")
        if given is not None and given != size and (kind is None or kind == env_kind):
            problems.append(("action_size_mismatch", "output_size", (f"output_size is {given} but the env's "
                             f"action space has {size} {'actions' if env_kind == 'discrete' else 'dimensions'}: "
                             f"remove output_size or make it {size}")))
    given = params.get("input_size")
    if isinstance(obs_space, Box) and given is not None and given != obs_space.dim:
        problems.append(("observation_size_mismatch", "input_size", (f"input_size is {given} but the env's "
                         f"observations have {obs_space.dim} values: remove input_size or make it {obs_space.dim}")))
    return problems
