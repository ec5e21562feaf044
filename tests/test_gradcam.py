"""Our differentiable Grad-CAM against the grad-cam package, gradcheck, hooks and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles import ClassifierOutputTarget, OracleGradCAM, scale_cam_image
from torch import nn

from agscm.data import load_split
from agscm.errors import AgscmError
from agscm.models.classifiers import ClassifierConfig, MadryCNN
from agscm.models.gradcam import GradCAM, gradcam_distance, resolve_layer


@pytest.fixture(scope="module")
def mnist_batch(mnist_dir) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_split(mnist_dir, "test").subset(16)
    return torch.from_numpy(data.as_float()), torch.from_numpy(data.labels)


@pytest.fixture(scope="module")
def cnn() -> MadryCNN:
    torch.manual_seed(0)
    return MadryCNN(ClassifierConfig()).eval()


def test_matches_grad_cam_package_raw_and_scaled(cnn, mnist_batch) -> None:
    images, labels = mnist_batch
    ours, _ = GradCAM(cnn, "relu2")(images, labels, create_graph=False)
    oracle = OracleGradCAM(model=cnn, target_layers=[cnn.relu2])
    scaled = oracle(input_tensor=images, targets=[ClassifierOutputTarget(int(c)) for c in labels])
    # raw maps, before the package's min-max scaling and resize, from the tensors it captured
    activations = oracle.activations_and_grads.activations[0].numpy()
    gradients = oracle.activations_and_grads.gradients[0].numpy()
    raw = np.maximum((gradients.mean(axis=(2, 3), keepdims=True) * activations).sum(axis=1), 0)
    np.testing.assert_allclose(ours.numpy(), raw, atol=1e-5, rtol=0)
    assert ours.abs().max() > 0  # a non-trivial map, so the comparison means something
    # the package scales per layer (min-max + resize), then once more across layers
    ours_scaled = scale_cam_image(scale_cam_image(ours.numpy(), (28, 28)))
    np.testing.assert_allclose(ours_scaled, scaled, atol=1e-5, rtol=0)
    oracle.activations_and_grads.release()


def test_default_layer_is_last_conv_map_and_hooks_are_released(cnn, mnist_batch) -> None:
    images, labels = mnist_batch
    cam = GradCAM(cnn)
    assert cam.layer_name == "relu2"
    cnn.train()
    maps, logits = cam(images, labels)
    assert maps.shape == (16, 14, 14) and logits.shape == (16, 10)
    assert cnn.training  # mode restored
    cnn.eval()
    assert not cnn.relu2._forward_hooks


class _TinySmoothNet(nn.Module):
    """Smooth activations so finite differences are valid for gradcheck."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.act1 = nn.Tanh()
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.act2 = nn.Softplus()
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act2(self.conv2(self.act1(self.conv1(x)))).flatten(1))


def _input_gradient(cam: GradCAM, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(cam(x, labels)[0].pow(2).sum(), x)[0]


def test_second_order_term_flows_through_alpha_in_a_smooth_head() -> None:
    torch.manual_seed(0)
    model = _TinySmoothNet().requires_grad_(False)
    x, labels = torch.rand(3, 1, 6, 6), torch.tensor([0, 1, 2])
    faithful = _input_gradient(GradCAM(model, "conv1"), x, labels)
    first = _input_gradient(GradCAM(model, "conv1", first_order=True), x, labels)
    assert faithful.abs().sum() > 0 and first.abs().sum() > 0
    # d alpha / d x contributes a visible share of the gradient
    assert (faithful - first).abs().max() > 0.01 * faithful.abs().max()


def test_second_order_term_vanishes_behind_a_piecewise_linear_head(cnn, mnist_batch) -> None:
    # After relu2 the MNIST CNN is max-pool, ReLU and linear layers: d y / d A is piecewise
    # constant in A, so alpha has no gradient and both modes agree exactly.
    images, labels = mnist_batch
    faithful = _input_gradient(GradCAM(cnn), images[:4], labels[:4])
    first = _input_gradient(GradCAM(cnn, first_order=True), images[:4], labels[:4])
    assert faithful.abs().sum() > 0
    torch.testing.assert_close(faithful, first)


def test_gradcam_distance_passes_gradcheck() -> None:
    torch.manual_seed(0)
    model = _TinySmoothNet().double().requires_grad_(False)
    cam = GradCAM(model, "act2")
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    labels = torch.tensor([0, 2])
    clean, _ = cam(x, labels, create_graph=False)
    x_adv = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)

    def loss(adversarial: torch.Tensor) -> torch.Tensor:
        return gradcam_distance(clean, cam(adversarial, labels, create_graph=True)[0]).sum()

    assert torch.autograd.gradcheck(loss, (x_adv,), eps=1e-6, atol=1e-5)


def test_wrong_layer_lists_candidates(cnn) -> None:
    with pytest.raises(AgscmError, match="candidates: .*conv2"):
        resolve_layer(cnn, "conv9")


def test_non_convolutional_layer_is_refused(cnn, mnist_batch) -> None:
    images, labels = mnist_batch
    with pytest.raises(AgscmError, match="not a convolutional feature map"):
        GradCAM(cnn, "fc1")(images, labels)
    assert not cnn.fc1._forward_hooks


def test_distance_of_a_known_case() -> None:
    clean = torch.ones(1, 2, 2)
    adversarial = torch.zeros(1, 2, 2)
    assert gradcam_distance(clean, adversarial).item() == pytest.approx(4.0)
    doubled = gradcam_distance(2 * clean, adversarial, normalize=True)
    assert doubled.item() == pytest.approx(4.0)  # normalised: peak 1, so scale-free
    # amplifying the saliency map is not "moving it away": capped at the clean peak
    amplified = gradcam_distance(clean, 50 * clean, normalize=True)
    assert amplified.item() == pytest.approx(0.0)
