"""The gradient baselines: parity with torchattacks, invariants over the registry, real effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks
from torch import nn

from agscm.attacks import craft as craft_module
from agscm.attacks.ata import ATA
from agscm.attacks.craft import CraftState, craft
from agscm.attacks.fgsm import FGSM
from agscm.attacks.mifgsm import MIFGSM
from agscm.attacks.pgd import PGD
from agscm.attacks.registry import ATTACKS, attack_settings, make_attack
from agscm.data import ImageSet, load_split
from agscm.errors import AgscmError
from agscm.models.batches import accuracy, iterate_batches
from agscm.models.gradcam import GradCAM, gradcam_distance


class TinyCNN(nn.Module):
    """A small MNIST CNN that trains in about a second; Grad-CAM layer `relu2` (14 x 14)."""

    default_gradcam_layer = "relu2"

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.relu1(self.conv1(x - 0.13)), 2)
        x = nn.functional.max_pool2d(self.relu2(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def mnist_test(mnist_dir) -> ImageSet:
    return load_split(mnist_dir, "test").subset(300)


@pytest.fixture(scope="module")
def model(mnist_dir, mnist_test) -> nn.Module:
    """TinyCNN trained for 252 steps on 2,000 real MNIST digits (about 96% test accuracy)."""
    torch.manual_seed(0)
    net = TinyCNN()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    train = load_split(mnist_dir, "train").subset(2000)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        for images, labels in iterate_batches(train, 32, shuffle=True, generator=generator):
            loss = nn.functional.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    assert accuracy(net, mnist_test) > 0.9
    return net


@pytest.fixture(scope="module")
def batch(mnist_test) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iterate_batches(mnist_test.subset(32), 32))


@pytest.mark.parametrize("ours, theirs", [
    (lambda m: FGSM(m, eps=0.3), lambda m: torchattacks.FGSM(m, eps=0.3)),
    (lambda m: PGD(m, eps=0.3, alpha=0.05, steps=7, random_start=False),
     lambda m: torchattacks.PGD(m, eps=0.3, alpha=0.05, steps=7, random_start=False)),
    (lambda m: MIFGSM(m, eps=0.3, alpha=0.05, steps=7, decay=1.0),
     lambda m: torchattacks.MIFGSM(m, eps=0.3, alpha=0.05, steps=7, decay=1.0)),
], ids=["fgsm", "pgd", "mifgsm"])
def test_matches_torchattacks(model, batch, ours, theirs) -> None:
    images, labels = batch
    expected = theirs(model)(images, labels)
    got = ours(model)(images, labels)
    assert (got - images).abs().max() > 0.1  # the attack moved the images
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm, eps", [("linf", 0.3), ("l2", 2.0)])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_invariants(model, batch, name, norm, eps) -> None:
    images, labels = batch
    steps = {"steps": 3} if "steps" in ATTACKS[name].options else {}
    attack = ATTACKS[name](model, eps, norm=norm, **steps)
    model.train()
    try:
        adversarial = attack(images, labels)
        assert model.training  # the attack ran in eval mode and gave the mode back
    finally:
        model.eval()
    assert adversarial.shape == images.shape and adversarial.dtype == torch.float32
    assert not adversarial.requires_grad and torch.isfinite(adversarial).all()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    delta = (adversarial - images).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= eps + 1e-6
    assert size.mean() > 0.5 * eps  # it used the budget


@pytest.mark.parametrize("name, bound", [("pgd", 0.05), ("mifgsm", 0.1), ("ata", 0.1),
                                         ("fgsm", 0.5)])
def test_accuracy_drops_white_box(model, mnist_test, name, bound) -> None:
    data = mnist_test.subset(200) if name != "ata" else mnist_test.subset(64)
    steps = {"steps": 10} if name == "ata" else {}
    clean = accuracy(model, data)
    result = craft(make_attack(name, model, 0.3, **steps), data, batch_size=100, progress=False)
    predictions = model(torch.from_numpy(result.adversarial)).argmax(1).numpy()
    adversarial = float((predictions == data.labels).mean())
    assert clean > 0.9 and adversarial < bound


def test_noise_is_a_seeded_random_corner_of_the_ball(model, batch) -> None:
    images, labels = batch
    attack = make_attack("noise", model, 0.1)
    torch.manual_seed(0)
    first = attack(images, labels)
    torch.manual_seed(0)
    assert torch.equal(first, attack(images, labels))
    inside = (images >= 0.1) & (images <= 0.9)  # pixels the [0,1] clip cannot touch
    moved = (first - images)[inside].abs()
    torch.testing.assert_close(moved, torch.full_like(moved, 0.1))
    assert 0.4 < float(((first - images)[inside] > 0).float().mean()) < 0.6  # signs uniform


def test_registry_defaults_follow_eps_and_data(model) -> None:
    madry = make_attack("pgd", model, 0.3, channels=1)
    assert (madry.steps, madry.alpha) == (40, pytest.approx(0.01))
    cifar = make_attack("pgd", model, 8 / 255, channels=3)
    assert (cifar.steps, cifar.alpha) == (10, pytest.approx(2 / 255))
    assert make_attack("pgd", model, channels=3).eps == pytest.approx(8 / 255)
    assert make_attack("mifgsm", model, 0.2, steps=4).alpha == pytest.approx(0.05)
    assert make_attack("ata", model, 0.3, steps=20, alpha=0.02).alpha == 0.02
    settings = attack_settings(make_attack("ata", model, 0.3))
    assert settings["layer"] == "relu2" and settings["steps"] == 40


@pytest.mark.parametrize("call, message", [
    (lambda m: make_attack("cw", m, 0.3), "choose one of fgsm, pgd, mifgsm, ata, noise"),
    (lambda m: make_attack("pgd", m, 1.5), "eps above 1"),
    (lambda m: make_attack("fgsm", m, 0.0), "eps must be > 0"),
    (lambda m: make_attack("fgsm", m, 0.3, steps=5), "fgsm takes no steps"),
    (lambda m: make_attack("pgd", m, 0.3, steps=0), "steps must be >= 1"),
    (lambda m: make_attack("pgd", m, 0.3, norm="l1"), "unknown norm"),
    (lambda m: make_attack("pgd", m, norm="l2"), "give eps for an L2 attack"),
])
def test_registry_errors(model, call, message) -> None:
    with pytest.raises(AgscmError, match=message):
        call(model)


def test_ata_without_attention_is_ifgsm(model, batch) -> None:
    images, labels = batch
    ata = ATA(model, eps=0.3, alpha=0.05, steps=5, lambda_ata=0.0)(images, labels)
    ifgsm = PGD(model, eps=0.3, alpha=0.05, steps=5, random_start=False)(images, labels)
    torch.testing.assert_close(ata, ifgsm, atol=1e-6, rtol=0)


def test_ata_attention_term_moves_the_map(model, batch) -> None:
    images, labels = batch
    gradcam = GradCAM(model)
    clean, _ = gradcam(images, labels, create_graph=False)

    def distance(lambda_ata: float) -> float:
        attack = ATA(model, eps=0.3, alpha=0.05, steps=8, lambda_ata=lambda_ata)
        adversarial = attack(images, labels)
        maps, _ = gradcam(adversarial, labels, create_graph=False)
        return float(gradcam_distance(clean, maps).sqrt().mean())

    assert distance(30.0) > 1.05 * distance(0.0)


def test_craft_keeps_order_and_reports_speed(model, mnist_test) -> None:
    data = mnist_test.subset(70)
    attack = FGSM(model, eps=0.1)
    result = craft(attack, data, batch_size=32, progress=False)
    assert result.adversarial.shape == data.images.shape
    assert result.adversarial.dtype == np.float32
    images, labels = next(iterate_batches(data.subset(70), 70))
    np.testing.assert_allclose(result.adversarial, attack(images, labels).numpy(), atol=1e-6)
    assert result.seconds > 0 and result.images_per_second > 0


class Killed(Exception):
    """Stands for the run being killed right after it saved its progress."""


class MemoryStore:
    """A CraftStore in memory that can kill the craft after its n-th save."""

    def __init__(self, kill_after: int | None = None) -> None:
        self.state: CraftState | None = None
        self.saves = 0
        self.kill_after = kill_after

    def load(self) -> CraftState | None:
        return self.state

    def save(self, state: CraftState) -> None:
        self.state, self.saves = state, self.saves + 1
        if self.saves == self.kill_after:
            raise Killed


def test_a_killed_craft_resumes_to_the_images_of_an_uninterrupted_one(model, mnist_test,
                                                                       monkeypatch) -> None:
    """PGD's random starts come from torch's global generator, which the method seeds once per
    set: the resumed craft must restore where that stream was, not draw batch 3 from the seed."""
    monkeypatch.setattr(craft_module, "SAVE_EVERY_SECONDS", 0.0)  # save after every batch
    data = mnist_test.subset(100)
    attack = PGD(model, eps=0.3, alpha=0.05, steps=3)
    torch.manual_seed(0)
    whole = craft(attack, data, batch_size=32, progress=False)

    store = MemoryStore(kill_after=2)
    torch.manual_seed(0)
    with pytest.raises(Killed):
        craft(attack, data, batch_size=32, progress=False, store=store)
    assert store.state is not None and store.state.done == 64
    calls = []
    original = attack.forward
    attack.forward = lambda images, labels: calls.append(len(labels)) or original(images, labels)
    torch.manual_seed(0)  # as BaselineMethod.craft does before every craft
    resumed = craft(attack, data, batch_size=32, progress=False, store=store)
    assert calls == [32, 4]  # only the batches the killed run had not saved
    np.testing.assert_array_equal(resumed.adversarial, whole.adversarial)
    assert resumed.seconds > store.state.seconds  # the killed run's seconds are counted too
    assert store.saves == 3  # after batch 3, not after the last one


def test_progress_cut_by_another_batch_size_is_not_resumed(model, mnist_test, monkeypatch) -> None:
    monkeypatch.setattr(craft_module, "SAVE_EVERY_SECONDS", 0.0)
    data = mnist_test.subset(64)
    attack = PGD(model, eps=0.3, alpha=0.05, steps=2)
    store = MemoryStore(kill_after=1)
    torch.manual_seed(0)
    with pytest.raises(Killed):
        craft(attack, data, batch_size=16, progress=False, store=store)
    torch.manual_seed(0)
    whole = craft(attack, data, batch_size=32, progress=False)
    torch.manual_seed(0)
    again = craft(attack, data, batch_size=32, progress=False, store=MemoryStore())
    store.kill_after = None
    torch.manual_seed(0)
    restarted = craft(attack, data, batch_size=32, progress=False, store=store)
    np.testing.assert_array_equal(again.adversarial, whole.adversarial)
    np.testing.assert_array_equal(restarted.adversarial, whole.adversarial)
