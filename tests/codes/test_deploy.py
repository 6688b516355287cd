import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import abrnet
from abrnet.codes.deploy import BinaryInputLinear, pack_linears, unpack_bits
from abrnet.codes.packing import pack


@settings(max_examples=60, deadline=None)
@given(
    lead=st.lists(st.integers(0, 4), min_size=0, max_size=2),
    k=st.integers(1, 70),
    n=st.integers(1, 20),
    g=st.sampled_from((1, 2, 4, 8)),
    packed=st.booleans(),
    dense=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_binary_input_linear_equals_f_linear(lead, k, n, g, packed, dense, bias, seed):
    torch.manual_seed(seed)
    linear = nn.Linear(k, n, bias=bias)
    layer = BinaryInputLinear.from_linear(linear, group_bits=g, dense_batch=1 if dense else 10**9)
    x = (torch.rand(*lead, k) > 0.5).float()
    expected = F.linear(x, linear.weight, linear.bias).detach()
    arg = torch.from_numpy(pack(x.reshape(-1, k))).reshape(*lead, -(-k // 8)) if packed else x
    y = layer(arg)
    assert y.shape == expected.shape
    assert torch.allclose(y, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("g", [4, 8])
def test_within_1e_3_at_k_4096(g):
    torch.manual_seed(0)
    linear = nn.Linear(4096, 64)
    layer = BinaryInputLinear.from_linear(linear, group_bits=g, dense_batch=10**9)
    x = (torch.rand(3, 4096) > 0.5).float()
    err = (layer(x) - linear(x)).abs().max().item()
    assert err < 1e-3
    assert (layer(torch.from_numpy(pack(x))) - linear(x)).abs().max().item() < 1e-3


def test_table_memory_is_visible():
    layer = BinaryInputLinear.from_linear(nn.Linear(64, 10), group_bits=4)
    assert layer.table.shape == (64 // 4 * 16, 10)
    assert layer.table_ratio == pytest.approx(16 / 4) and layer.table_bytes == 4 * 64 * 10 * 4
    assert "4.0x W" in repr(layer) and "group_bits=4" in repr(layer)
    padded = BinaryInputLinear.from_linear(nn.Linear(12, 3), group_bits=8)  # K padded to 16
    assert padded.table.shape == (2 * 256, 3)
    with pytest.raises(ValueError, match="group_bits"):
        BinaryInputLinear.from_linear(nn.Linear(8, 2), group_bits=3)
    with pytest.raises(ValueError, match="packed uint8"):
        layer(torch.zeros(1, 64, dtype=torch.uint8))


def test_state_dict_round_trip_rebuilds_the_table():
    a = BinaryInputLinear.from_linear(nn.Linear(20, 5), group_bits=4)
    state = a.state_dict()
    assert "table" not in state  # derived, not stored
    b = BinaryInputLinear.from_linear(nn.Linear(20, 5), group_bits=4)
    b.load_state_dict(state)
    x = (torch.rand(3, 20) > 0.5).float()
    assert torch.equal(a(x), b(x))


def test_unpack_bits_inverts_pack():
    x = (torch.rand(4, 19) > 0.5).float()
    assert torch.equal(unpack_bits(torch.from_numpy(pack(x)), 19), x)


def test_bool_and_integer_inputs_count_as_0_1():
    layer = BinaryInputLinear.from_linear(nn.Linear(12, 3), group_bits=4)
    x = torch.rand(2, 12) > 0.5
    assert torch.allclose(layer(x), layer(x.float())) and torch.allclose(layer(x.long()), layer(x.float()))


def test_pack_linears_replaces_linears_after_steps_and_keeps_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        abrnet.ABR(3),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 40),
        nn.BatchNorm1d(40),
        abrnet.ABR(40),
        nn.Dropout(0.2),
        nn.Linear(40, 5),
    )
    model(torch.randn(8, 1, 6, 6))  # settle BN statistics a little
    deployed = abrnet.binarize(model, fold_bn=True)
    packed = pack_linears(deployed, group_bits=4)
    assert isinstance(packed[3], BinaryInputLinear) and isinstance(packed[7], BinaryInputLinear)
    assert isinstance(deployed[3], nn.Linear)  # a copy by default
    x = torch.randn(6, 1, 6, 6)
    with torch.no_grad():
        assert (packed(x) - deployed(x)).abs().max() < 1e-3
    first = pack_linears(abrnet.binarize(model))
    assert isinstance(first[3], BinaryInputLinear)
    plain = pack_linears(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)))
    assert not any(isinstance(m, BinaryInputLinear) for m in plain)
