"""abrnet.analysis.semantics: firing rates, mutual information and neuron descriptions, checked
against loops, scikit-learn and hand-made cases."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score
from torch import nn

import abrnet
from abrnet.analysis import semantics as analysis


def _codes(n=600, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    p = rng.random((k, d))  # a firing probability per class and unit
    bits = (rng.random((n, d)) < p[labels]).astype(np.uint8)
    return bits, labels


def test_firing_rates_are_per_class_means():
    bits, labels = _codes()
    rates = analysis.firing_rates(bits, labels, 5)  # class 4 has no items
    assert rates.shape == (5, bits.shape[1])
    for c in range(4):
        for j in range(bits.shape[1]):
            assert rates[c, j] == pytest.approx(bits[labels == c, j].mean(), abs=1e-12)
    assert np.isnan(rates[4]).all()


def test_mutual_information_matches_scikit_learn():
    bits, labels = _codes()
    mi = analysis.mutual_information(bits, labels, 4)
    expected = [mutual_info_score(labels, bits[:, j]) / math.log(2) for j in range(bits.shape[1])]
    np.testing.assert_allclose(mi, expected, atol=1e-12)


def test_mutual_information_edge_cases():
    labels = np.repeat([0, 1, 2, 3], 50)
    bits = np.stack([labels < 2, np.ones_like(labels), np.zeros_like(labels), labels == 0], 1).astype(np.uint8)
    mi = analysis.mutual_information(bits, labels)
    assert mi[0] == pytest.approx(1.0)  # splits 4 balanced classes in halves: one full bit
    assert mi[1] == 0 and mi[2] == 0  # constant bits say nothing
    assert mi[3] == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))  # H(bit), Y determines it


def test_dead_and_always_on_units():
    bits = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1]], dtype=np.uint8)
    assert analysis.dead_units(bits).tolist() == [True, False, False, False]
    assert analysis.always_on_units(bits).tolist() == [False, True, False, False]


def test_top_units_highest_first_ties_by_index():
    assert analysis.top_units(np.array([0.1, 0.5, 0.5, 0.9, 0.0]), 3).tolist() == [3, 1, 2]


def test_cluster_order_puts_alike_units_together():
    a, b = np.array([1.0, 1, 0, 0]), np.array([0.0, 0, 1, 1])
    rates = np.stack([a, b, a * 0.95, b + 0.02, a * 0.9, b * 0.97], 1)  # (classes, units)
    order = analysis.cluster_order(rates, axis=1)
    assert sorted(order.tolist()) == list(range(6))
    groups = [0 if j % 2 == 0 else 1 for j in order]
    assert groups in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])
    assert sorted(analysis.cluster_order(rates, axis=0).tolist()) == [0, 1, 2, 3]


def test_describe_neurons_names_the_classes():
    rates = np.array([[0.9, 0.5], [0.1, 0.5], [0.85, 0.5]])  # 3 classes, 2 units
    mi = np.array([0.7, 0.0])
    first, second = analysis.describe_neurons(rates, ["Trouser", "Bag", "Sneaker"], mi, top=2)
    assert first.unit == 0 and first.mi == pytest.approx(0.7)
    assert first.fires_on == ["Trouser", "Sneaker"] and first.silent_on == ["Bag"]
    assert "fires on Trouser, Sneaker" in str(first)
    assert second.fires_on == [] and second.silent_on == []


def test_unit_name_for_vector_and_conv_layers():
    assert analysis.unit_name(17, (64,)) == "17"
    assert analysis.unit_name(2 * 12 + 1 * 4 + 3, (5, 3, 4)) == "c2 (1,3)"


def _deployed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 8), nn.ReLU(),
                        nn.Linear(8, 3))  # fmt: skip
    return abrnet.binarize(abrnet.convert(net, example_input=torch.zeros(1, 1, 4, 4)), "all")


def test_layer_codes_records_the_step_output_flattened():
    deployed = _deployed()
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    with torch.no_grad():
        conv = (deployed[0](x) > 0).flatten(1)
        fc = deployed[3](conv.float()) > 0
    bits, labels = analysis.layer_codes(deployed, "1", loader)
    assert bits.dtype == np.uint8 and bits.shape == (40, 48)
    np.testing.assert_array_equal(bits, conv.numpy())
    np.testing.assert_array_equal(labels, y.numpy())
    bits, _ = analysis.layer_codes(deployed, None, loader)  # default: the last step layer
    np.testing.assert_array_equal(bits, fc.numpy())


def test_layer_semantics_is_consistent():
    deployed = _deployed()
    ds = torch.utils.data.TensorDataset(torch.randn(90, 1, 4, 4), torch.arange(90) % 3)
    sem = analysis.layer_semantics(deployed, "1", ds, ["a", "b", "c"], heatmap_units=10, described=4)
    assert sem["rates"].shape == (3, 48) and sem["mi"].shape == (48,)
    assert sorted(sem["heatmap_units"].tolist()) == sorted(analysis.top_units(sem["mi"], 10).tolist())
    assert [s.unit for s in sem["described"]] == analysis.top_units(sem["mi"], 4).tolist()
    assert sem["dead"] == int((sem["bits"].sum(0) == 0).sum())
    assert sem["label_entropy"] == pytest.approx(math.log2(3))


def test_distinct_units_skip_look_alikes():
    rates = np.array([[1.0, 0.95, 0.0, 0.9], [0.0, 0.05, 1.0, 0.1], [1.0, 1.0, 0.0, 0.0]])
    mi = np.array([0.9, 0.8, 0.7, 0.6])
    assert analysis.distinct_units(rates, mi, 3) == [0, 2, 3]  # 1 is a copy of 0
    assert analysis.distinct_units(rates, mi, 1) == [0]
    sem = analysis.describe_neurons(rates, ["a", "b", "c"], mi, units=[2])
    assert [(n.unit, n.fires_on) for n in sem] == [(2, ["b"])]
