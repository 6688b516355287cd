"""HashNet's continuation in its 0/1 form: beta's schedule mapped onto a run's budget,
the forward and its exact gradient, the deploy step."""

import math

import pytest
import torch

import abrnet
from abrnet.hashnet import HASHNET_EVERY, HASHNET_GAMMA, HASHNET_STEPS, HashNetSigmoid, hashnet_beta


def test_beta_follows_hashnet_over_the_budget_in_steps_of_200():
    assert hashnet_beta(0.0) == 1.0
    assert hashnet_beta(1.0) == pytest.approx(math.sqrt(1 + HASHNET_GAMMA * HASHNET_STEPS))
    # constant inside one of HashNet's 200-iteration blocks, raised at its end
    block = HASHNET_EVERY / HASHNET_STEPS
    assert hashnet_beta(0.999 * block) == 1.0
    assert hashnet_beta(block) == pytest.approx(math.sqrt(1 + HASHNET_GAMMA * HASHNET_EVERY))


def test_module_counts_training_steps_against_its_budget():
    m = HashNetSigmoid(total_steps=100)
    x = torch.linspace(-2, 2, 9)
    for _ in range(50):
        m(x)
    m.eval()(x)  # evaluation does not advance it
    assert int(m.step) == 50 and m.beta == pytest.approx(hashnet_beta(0.5))
    assert torch.allclose(m(x), torch.sigmoid(2 * m.beta * x))
    assert torch.allclose(m(x), (torch.tanh(m.beta * x) + 1) / 2, atol=1e-6)
    assert "step" in m.state_dict()  # a resumed run continues the schedule


def test_gradient_is_exact():
    m = HashNetSigmoid().double()
    x = torch.randn(12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m.eval()(t), (x,))


def test_deploys_as_a_step():
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), HashNetSigmoid(), torch.nn.Linear(5, 2))
    deployed = abrnet.binarize(model)
    assert isinstance(deployed[1], abrnet.Step)
    out = deployed[1](torch.tensor([-1.0, 0.0, 1e-6]))
    assert out.tolist() == [0.0, 0.0, 1.0]
