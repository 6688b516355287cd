import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import abrnet
from abrnet.codes.packing import default_layer, extract_codes, load_codes, pack, packed_bytes, save_codes, unpack
from abrnet.errors import UserError


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 5), d=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_pack_round_trips_and_pads_with_zero_bits(n, d, seed):
    bits = np.random.default_rng(seed).integers(0, 2, size=(n, d), dtype=np.uint8)
    packed = pack(bits)
    assert packed.dtype == np.uint8 and packed.shape == (n, packed_bytes(d)) == (n, -(-d // 8))
    assert np.array_equal(unpack(packed, d), bits)
    full = np.unpackbits(packed, axis=1)
    assert not full[:, d:].any()  # padding is zero, so it adds no Hamming distance


def test_pack_bit_order_is_most_significant_first():
    bits = np.zeros((1, 10), np.uint8)
    bits[0, [0, 9]] = 1
    assert pack(bits).tolist() == [[0b10000000, 0b01000000]]
    assert pack(torch.tensor([[0.0, 1.0]])).tolist() == [[0b01000000]]


def test_pack_rejects_non_binary_values():
    with pytest.raises(ValueError, match="exactly 0 or 1"):
        pack(np.array([[0.0, 0.5]]))


def test_save_load_round_trip(tmp_path):
    bits = np.random.default_rng(0).integers(0, 2, size=(7, 13), dtype=np.uint8)
    labels = np.arange(7)
    save_codes(tmp_path / "c.npz", pack(bits), labels, 13, layer="3", note="x")
    c = load_codes(tmp_path / "c.npz")
    assert np.array_equal(unpack(c.packed, c.dim), bits) and np.array_equal(c.labels, labels)
    assert c.meta == {"layer": "3", "note": "x"}
    save_codes(tmp_path / "n.npz", pack(bits), None, 13)
    packed, lab, dim, meta = load_codes(tmp_path / "n.npz")
    assert lab is None and dim == 13 and meta == {}
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(UserError):
        load_codes(tmp_path / "bad.npz")


def _deployed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), abrnet.ABR(12), nn.Linear(12, 9), abrnet.ABR(9), nn.Linear(9, 3))
    return abrnet.binarize(model)


def test_extract_codes_equal_the_step_outputs_exactly():
    model = _deployed()
    x, y = torch.randn(20, 6), torch.arange(20) % 3
    loader = [(x[:8], y[:8]), (x[8:], y[8:])]
    assert default_layer(model) == "3"
    bits, labels, feats = extract_codes(model, None, loader)
    with torch.no_grad():
        expected, pre = model[:4](x), model[:3](x)
    assert bits.dtype == np.uint8 and np.array_equal(bits, expected.numpy().astype(np.uint8))
    assert np.array_equal(labels, y.numpy())
    assert np.allclose(feats, pre.numpy()) and np.array_equal(bits, feats > 0)
    assert np.array_equal(unpack(pack(bits), 9), bits)
    first, none, no_float = extract_codes(model, "1", [x], with_float=False)
    assert first.shape == (20, 12) and none is None and no_float is None


def test_extract_codes_flattens_conv_maps_and_names_choices():
    model = abrnet.binarize(nn.Sequential(nn.Conv2d(1, 2, 3), abrnet.ABR(2), nn.Flatten()))
    bits, _, feats = extract_codes(model, None, [torch.randn(3, 1, 5, 5)])
    assert bits.shape == feats.shape == (3, 2 * 3 * 3)
    with pytest.raises(UserError, match="choose from 1"):
        extract_codes(model, "0", [torch.randn(1, 1, 5, 5)])
    with pytest.raises(UserError, match="binarize"):
        default_layer(nn.Sequential(nn.Linear(2, 2)))
