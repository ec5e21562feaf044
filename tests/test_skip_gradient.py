"""The skip gradient (SGM): the forward pass is untouched, the gradient through every residual
branch is scaled by gamma and the one through the skip connections is not, and generator
training applies it to ResNet sources only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from agscm.errors import AgscmError
from agscm.models.classifiers import build_classifier, classifier_config
from agscm.models.generator_checkpoint import load_generator
from agscm.models.skip_gradient import residual_branch_ends, skip_gradient
from agscm.train.trainer import SourceSpec, TrainConfig, train_generator
from agscm.train.zoo import ZooConfig, train_classifier


def _model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    config = classifier_config(3, (16, 16), 10, [0.5] * 3, [0.25] * 3, arch=arch, width=4)
    return build_classifier(config).eval()


def _input_gradient(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    images = images.clone().requires_grad_(True)
    model(images)[:, 3].sum().backward()
    assert images.grad is not None
    return images.grad


@pytest.mark.parametrize("arch, branches", [("resnet9", 2), ("resnet-small", 3)])
def test_the_forward_pass_is_untouched_and_the_hooks_come_off(arch, branches) -> None:
    model = _model(arch)
    images = torch.rand(4, 3, 16, 16)
    assert len(residual_branch_ends(model)) == branches
    with torch.no_grad():
        plain_logits = model(images)
    plain = _input_gradient(model, images)
    handles = skip_gradient(model, 0.3)
    with torch.no_grad():
        assert torch.equal(model(images), plain_logits)
    assert not torch.allclose(_input_gradient(model, images), plain)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(_input_gradient(model, images), plain)


def test_a_resnet9_unit_gets_exactly_skip_plus_gamma_branch() -> None:
    """x + body(x): d/dx = I + gamma * d body/dx, checked against the branch's own gradient."""
    unit = _model("resnet9").layer1[2]
    x, weights = torch.rand(2, 8, 8, 8), torch.rand(2, 8, 8, 8)
    x_body = x.clone().requires_grad_(True)
    (unit.body(x_body) * weights).sum().backward()
    skip_gradient(unit, 0.25)
    x_unit = x.clone().requires_grad_(True)
    (unit(x_unit) * weights).sum().backward()
    torch.testing.assert_close(x_unit.grad, weights + 0.25 * x_body.grad)


def test_a_basic_block_gets_exactly_skip_plus_gamma_branch() -> None:
    """relu(branch(x) + x): d/dx = mask * (1 + gamma * d branch/dx), mask where the sum > 0."""
    block = _model("resnet-small").stage1  # identity shortcut
    x, weights = torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16)
    x_branch = x.clone().requires_grad_(True)
    branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x_branch)))))
    upstream = weights * (branch + x > 0)
    (branch * upstream).sum().backward()
    skip_gradient(block, 0.25)
    x_block = x.clone().requires_grad_(True)
    (block(x_block) * weights).sum().backward()
    torch.testing.assert_close(x_block.grad, upstream.detach() + 0.25 * x_branch.grad)


def test_plain_networks_have_no_branches_and_gamma_is_checked() -> None:
    for arch in ("vgg-small", "mobilenet-small"):
        assert residual_branch_ends(_model(arch)) == []
    for gamma in (0.0, 1.5):
        with pytest.raises(AgscmError, match=r"gamma must be in \(0, 1\]"):
            skip_gradient(_model("resnet9"), gamma)


@pytest.fixture(scope="module")
def resnet_zoo(tmp_path_factory, mnist_dir) -> Path:
    zoo = tmp_path_factory.mktemp("zoo")
    train_classifier(ZooConfig(data=str(mnist_dir), kind="natural", arch="resnet-small",
                               width=4, epochs=1, batch_size=64, train_limit=512),
                     zoo / "tiny-resnet.safetensors", test_limit=100)
    return zoo


def test_training_with_sgm_changes_the_generator_and_is_recorded(mnist_dir, resnet_zoo,
                                                                   tmp_path) -> None:
    def train(out: str, gamma: float) -> nn.Module:
        config = TrainConfig(data=str(mnist_dir), out=str(tmp_path / out), zoo_dir=str(resnet_zoo),
                             sources=[SourceSpec("tiny-resnet")], epochs=1, batch_size=64,
                             width=4, residual_blocks=1, train_limit=256, val_limit=64,
                             skip_gradient=gamma)
        return train_generator(config).generator

    plain, sgm = train("plain.safetensors", 1.0), train("sgm.safetensors", 0.5)
    assert load_generator(tmp_path / "sgm.safetensors")[1]["train"]["skip_gradient"] == 0.5
    assert any(not torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                     sgm.state_dict().values(), strict=True))
