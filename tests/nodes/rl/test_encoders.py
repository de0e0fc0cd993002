"""Encoders: the Nature CNN's shapes, flat and image inputs alike, image shapes and their errors; an actor-critic
with a CNN encoder acts and re-evaluates consistently."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.encoders import ConvEncoder, build_encoder, encode, image_shape_for, linear


def test_nature_cnn_defaults_on_84x84() -> None:
    encoder, width = build_encoder("cnn", 84 * 84, [512], "relu")
    assert isinstance(encoder, ConvEncoder) and width == 512
    convs = [m for m in encoder.convs if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    first = encoder.head[0]
    assert isinstance(first, nn.Linear) and first.in_features == 64 * 7 * 7
    assert encoder(torch.rand(3, 84 * 84)).shape == (3, 512)


def test_flat_and_image_inputs_agree() -> None:
    torch.manual_seed(0)
    encoder = ConvEncoder((2, 6, 5), [4, 8], [3, 2], [1, 1], [16], "relu")
    images = torch.rand(3, 2, 6, 5)
    torch.testing.assert_close(encoder(images), encoder(images.flatten(1)))


def test_image_shapes() -> None:
    assert image_shape_for(84 * 84, None) == (1, 84, 84)
    assert image_shape_for(60, [3, 4, 5]) == (3, 4, 5)
    with pytest.raises(ValueError, match="not one square image"):
        image_shape_for(10, None)
    with pytest.raises(ValueError, match="holding the observation's 60 values"):
        image_shape_for(60, [3, 4, 4])
    with pytest.raises(ValueError, match="shrink"):
        ConvEncoder((1, 5, 5), [4], [8], [1], [8], "relu")
    with pytest.raises(ValueError, match="one length"):
        ConvEncoder((1, 5, 5), [4, 4], [3], [1], [8], "relu")


def test_mlp_encoder_keeps_its_state_dict_names() -> None:
    """An MLP actor-critic keeps the parameter names it had before encoders existed (old checkpoints load)."""
    names = set(ActorCritic(4, 2, (8, 8), "tanh", "discrete").state_dict())
    assert {"trunk.0.weight", "trunk.2.weight", "actor_head.weight", "critic_head.weight"} <= names


def test_cnn_actor_critic_acts_and_reevaluates() -> None:
    torch.manual_seed(0)
    model = ActorCritic(25, 4, [32], "relu", "discrete", encoder="cnn", image_shape=[1, 5, 5], cnn_channels=[8],
                        cnn_kernels=[3], cnn_strides=[1])
    obs = torch.rand(6, 25)
    acted = model.act(obs)
    log_prob, _, value = model.evaluate(acted.observation, acted.action)
    torch.testing.assert_close(log_prob, acted.log_prob)
    torch.testing.assert_close(value, acted.value)
    module = model.deployable()
    assert torch.equal(module(obs), model(obs)[0]["logits"].argmax(dim=-1))


@pytest.mark.parametrize("activation", ["tanh", "elu", "relu", "identity"])
def test_encode_computes_what_the_module_computes(activation: str) -> None:
    """``encode`` of an MLP and ``linear`` of a head give the module calls' numbers bit for bit, with autograd; a
    CNN encoder is called as it is."""
    torch.manual_seed(0)
    encoder, width = build_encoder("mlp", 7, (32, 16), activation)
    head = nn.Linear(width, 3)
    x = torch.randn(9, 7, requires_grad=True)
    ours = linear(head, encode(encoder, x))
    theirs = head(encoder(x))
    assert torch.equal(ours, theirs)
    (ours_grad,) = torch.autograd.grad(ours.square().sum(), x)
    (their_grad,) = torch.autograd.grad(theirs.square().sum(), x)
    assert torch.equal(ours_grad, their_grad)
    cnn, _ = build_encoder("cnn", 36 * 36, (8,), "relu", cnn_channels=(4,), cnn_kernels=(3,), cnn_strides=(2,))
    images = torch.rand(2, 36 * 36)
    assert torch.equal(encode(cnn, images), cnn(images))
