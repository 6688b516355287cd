import pytest
import torch
from torch import nn

import abrnet
from abrnet.rivals import PACT


def test_binarization_stats_counts_shares_exactly():
    abr = abrnet.ABR(2)
    with torch.no_grad():
        abr.slope.copy_(torch.tensor([1.0, 4.0]))
    model = nn.Sequential(abr)
    x = torch.tensor([[-1.0, 0.5], [0.5, -2.0], [2.0, 0.1]])
    # outputs: [[0, 1], [0.5, 0], [1, 0.4]] -> zeros 2, ones 2, between 2
    s = abrnet.binarization_stats(model, x)["0"]
    assert (s.zero, s.one, s.between) == pytest.approx((2 / 6, 2 / 6, 2 / 6))
    assert s.changed == pytest.approx(2 / 6)
    assert (s.slope_min, s.slope_mean, s.slope_max) == pytest.approx((1.0, 2.5, 4.0))
    assert s.binary == pytest.approx(4 / 6) and s.numel == 6


def test_binarization_stats_accepts_loaders_and_restores_mode():
    model = nn.Sequential(nn.Linear(3, 5), abrnet.ABR(5), nn.Linear(5, 2), abrnet.ABR(2)).train()
    data = [(torch.randn(4, 3), torch.zeros(4)) for _ in range(3)]
    stats = abrnet.binarization_stats(model, data, max_batches=2)
    assert set(stats) == {"1", "3"} and stats["1"].numel == 2 * 4 * 5
    assert model.training
    stepped = abrnet.binarize(model)
    for s in abrnet.binarization_stats(stepped, data).values():
        assert s.between == 0 and s.changed == 0 and s.slope_mean is None


def test_binarization_stats_say_where_each_deployed_step_fires():
    rounded, paper, pact = abrnet.ABR(5), abrnet.ABR(5), PACT(init_alpha=0.6)
    with torch.no_grad():
        rounded.threshold.fill_(0.25)
    rounded.frozen = True
    model = nn.Sequential(nn.Linear(3, 5), rounded, nn.Linear(5, 5), paper, nn.Linear(5, 5), pact)
    stats = abrnet.binarization_stats(model, torch.randn(8, 3))
    assert [stats[n].threshold for n in ("1", "3", "5")] == pytest.approx([0.25, 0.0, 0.3])
    assert [stats[n].frozen for n in ("1", "3", "5")] == [True, False, False]
    # the deployed network says the same; a folded BatchNorm has one threshold per channel
    deployed = abrnet.binarization_stats(abrnet.binarize(model), torch.randn(8, 3))
    assert [deployed[n].threshold for n in ("1", "3", "5")] == pytest.approx([0.25, 0.0, 0.3])
    bn = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), abrnet.ABR(5)).train()
    bn(torch.randn(16, 3))
    assert abrnet.binarization_stats(abrnet.binarize(bn.eval(), fold_bn=True), torch.randn(8, 3))["2"].threshold is None


def test_summary_counts_bits_per_example():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), abrnet.ABR(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10), nn.ReLU())
    s = abrnet.summary(model, (1, 8, 8))
    rows = {r.name: r for r in s.rows}
    assert rows["1"].float_bits == 32 * 4 * 36 and rows["1"].deploy_bits == 4 * 36
    assert rows["0"].deploy_bits == rows["0"].float_bits  # conv output stays float
    assert rows["4"].activation and rows["4"].deploy_bits == 320
    assert s.hidden_float_bits == 32 * 144 + 320 and s.hidden_binary_bits == 144 + 320
    assert s.ratio == pytest.approx((32 * 144 + 320) / (144 + 320))
    text = str(s)
    assert "float32" in text and "smaller" in text
    assert s.to_dict()["ratio"] == pytest.approx(s.ratio)


def test_summary_of_all_binary_model_is_32x():
    model = nn.Sequential(nn.Linear(10, 20), abrnet.ABR(20), nn.Linear(20, 20), abrnet.ABR(20), nn.Linear(20, 3))
    assert abrnet.summary(abrnet.binarize(model), (10,)).ratio == pytest.approx(32.0)


def test_binarization_stats_counts_threshold_steps():
    model = nn.Sequential(nn.Linear(3, 5), abrnet.ThresholdStep(torch.tensor([0.5]), torch.tensor([1.0])))
    s = abrnet.binarization_stats(model, torch.randn(4, 3))["1"]
    assert s.numel == 20 and s.between == 0 and s.binary == 1
