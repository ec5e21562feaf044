"""The generator's bound, the loss terms' signs, and config errors."""

from __future__ import annotations

import pytest
import torch

from agscm.errors import AgscmError
from agscm.models.generator import Generator, GeneratorConfig
from agscm.train.objectives import Settings, SourcePass, create_objective
from agscm.train.objectives.gradcam import gradcam_loss
from agscm.train.objectives.noise import noise_loss


def adversarial_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, kappa: float = 0.0,
                     targeted: bool = False) -> torch.Tensor:
    """The registered objective `kind` on these adversarial logits."""
    return create_objective(kind, Settings(kappa=kappa)).term(
        SourcePass(logits=logits, goal=labels, targeted=targeted))


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("linf", 8 / 255), ("l2", 1.5)])
@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (2, 3, 32, 32), (1, 3, 36, 20)])
@pytest.mark.parametrize("downsamplings", [0, 2])
def test_bound_holds_on_every_output(norm: str, eps: float, shape: tuple[int, ...],
                                     downsamplings: int) -> None:
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(channels=shape[1], width=4, residual_blocks=1,
                                          eps=eps, norm=norm, downsamplings=downsamplings))
    with torch.no_grad():  # push the raw output into saturation so the bound is exercised
        generator.body[-1].weight.mul_(100)
    x = torch.rand(shape)
    delta = generator.perturbation(x)
    adversarial = generator(x)
    assert adversarial.shape == x.shape and not torch.isnan(adversarial).any()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    if norm == "linf":
        assert delta.abs().max() <= eps + 1e-7
        assert delta.abs().max() > 0.9 * eps  # saturated, so the bound was tested
    else:
        assert delta.flatten(1).norm(dim=1).max() <= eps * (1 + 1e-5)
    assert (adversarial - x).abs().max() <= delta.abs().max() + 1e-7


def test_sizes_not_multiple_of_four_are_refused() -> None:
    generator = Generator(GeneratorConfig(width=4, residual_blocks=1))
    with pytest.raises(AgscmError, match="multiple of 4"):
        generator(torch.rand(1, 1, 30, 28))


@pytest.mark.parametrize("config", [GeneratorConfig(eps=0), GeneratorConfig(eps=-0.1),
                                    GeneratorConfig(eps=2.0), GeneratorConfig(norm="l1"),
                                    GeneratorConfig(downsamplings=3),
                                    GeneratorConfig(downsamplings=-1)])
def test_bad_generator_configs(config: GeneratorConfig) -> None:
    with pytest.raises(AgscmError):
        Generator(config)


@pytest.mark.parametrize("downsamplings,resolutions", [(0, {32}), (1, {32, 16}),
                                                       (2, {32, 16, 8})])
def test_downsamplings_set_the_resolutions_the_blocks_see(downsamplings: int,
                                                          resolutions: set[int]) -> None:
    """Full resolution means no block ever sees a coarser grid than the image's."""
    generator = Generator(GeneratorConfig(channels=3, width=4, residual_blocks=1,
                                          downsamplings=downsamplings))
    seen: set[int] = set()
    for module in generator.body:
        module.register_forward_hook(lambda _m, _i, out: seen.add(out.shape[-1]))
    generator(torch.rand(1, 3, 32, 32))
    assert seen == resolutions


def test_noise_hinge_is_free_below_c_and_linear_above() -> None:
    delta = torch.zeros(2, 1, 2, 2)
    delta[0, 0, 0, 0] = 3.0  # ||.||_2 = 3
    delta[1, 0, 0, 0] = 1.0  # ||.||_2 = 1
    assert noise_loss(delta, 2.0).item() == pytest.approx((1.0 + 0.0) / 2)
    assert noise_loss(delta, 5.0).item() == 0.0


def test_adversarial_losses_reward_fooling() -> None:
    labels = torch.tensor([0, 1])
    right = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    wrong = torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]])
    for kind in ("ce", "cw", "mse"):
        assert adversarial_loss(wrong, labels, kind) < adversarial_loss(right, labels, kind)
        # targeted at the labels: being classified as the target is the goal
        assert (adversarial_loss(right, labels, kind, targeted=True)
                < adversarial_loss(wrong, labels, kind, targeted=True))
    assert adversarial_loss(wrong, labels, "cw", kappa=1.0).item() == pytest.approx(-1.0)


def test_gradcam_loss_sign() -> None:
    distance = torch.tensor([1.0, 3.0])
    assert gradcam_loss(distance).item() == -2.0  # untargeted: larger distance, lower loss
    assert gradcam_loss(distance, targeted=True).item() == 2.0


def test_clip_output_is_the_projection_onto_the_box() -> None:
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(channels=3, width=4, residual_blocks=1, eps=8 / 255,
                                          output="clip", output_scale=3.0))
    x = torch.rand(2, 3, 16, 16)
    raw = generator.body(x)
    expected = 8 / 255 * (3.0 * raw).clamp(-1, 1)
    torch.testing.assert_close(generator.perturbation(x), expected)
    assert ((3.0 * raw).abs() > 1).any() and ((3.0 * raw).abs() < 1).any()  # both regimes hit
    with pytest.raises(AgscmError, match="unknown generator output 'sigmoid'"):
        GeneratorConfig(output="sigmoid").validate()
