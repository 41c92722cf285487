"""explain: the terms add up to conv2d's value (and torch's); the seed's numbers are printed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import convkit
from convkit.cli import main
from convkit.examples import seed000
from oracle import torch_conv2d

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]


def test_seed000_groups1_as_the_seed_writes_it():
    x, w = seed000(groups=1)
    e = convkit.explain(x, w, (0, 0, 0, 0))
    assert round(e.value, 3) == -132.636
    assert e.group == 0 and e.in_channels == (0, 1, 2) and len(e.terms) == 27
    text = str(e)
    assert "-0.1146*141 - 0.0763*138 - 0.0392*143 +" in text
    assert "0.1027*111 + 0.0132*113 + 0.0144*116 = -132.6360" in text
    assert "[ 0.0143,  0.0109,  0.0747]   [138, 139, 143]" in text


def test_seed000_groups3_both_kernels():
    x, w = seed000(groups=3)
    first, second = (convkit.explain(x, w, (0, c, 0, 0), groups=3) for c in (0, 1))
    assert str(first).endswith("-0.1271*135 - 0.2342*137 - 0.1725*138 = -105.5849")
    assert str(second).endswith("0.2186*135 + 0.0368*137 + 0.2127*138 = 123.3577")
    assert first.in_channels == second.in_channels == (0,)
    third = convkit.explain(x, w, (1, 5, 1, 2), groups=3)
    assert third.group == 2 and third.in_channels == (2,)


@given(mode=st.sampled_from(MODES), stride=st.integers(1, 2), dilation=st.integers(1, 2),
       padding=st.sampled_from([0, 1, (1, 2), "same", ((2, 0), (0, 1))]),
       groups=st.sampled_from([1, 2]), batched=st.booleans(), seed=st.integers(0, 99))
def test_value_equals_conv2d_and_torch_at_every_index(mode, stride, dilation, padding, groups,
                                                      batched, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 4, 5, 6) if batched else (4, 5, 6))
    w, b = rng.standard_normal((4, 4 // groups, 2, 3)), rng.standard_normal(4)
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=mode)
    out = torch_conv2d(x, w, b, **settings)
    random_index = tuple(int(rng.integers(0, s)) for s in out.shape)
    for index in (random_index, (0,) * out.ndim):
        e = convkit.explain(x, w, index, b, **settings)
        assert e.value == pytest.approx(out[index], rel=1e-12, abs=1e-12)
        assert e.value == pytest.approx(convkit.conv2d(x, w, b, **settings)[index], rel=1e-12,
                                        abs=1e-12)
        assert sum(t.input_value * t.weight_value for t in e.terms) + e.bias == \
            pytest.approx(e.value)


def test_padding_is_shown_as_padding():
    x = np.arange(16.0).reshape(1, 4, 4)
    zeros = convkit.explain(x, np.ones((1, 1, 3, 3)), (0, 0, 0), padding=1)
    assert sum(t.source is None for t in zeros.terms) == 5
    assert "[pad, pad, pad]" in str(zeros)
    reflect = convkit.explain(x, np.ones((1, 1, 3, 3)), (0, 0, 0), padding=1,
                              padding_mode="reflect")
    corner = reflect.terms[0]
    assert corner.position == (0, 0, -1, -1) and corner.source == (0, 0, 1, 1)
    assert corner.is_padding and "[5]" in str(reflect)


@pytest.mark.parametrize("index,message", [
    ((0, 0, 0), r"index must be \(n, c_out, h, w\), got \(0, 0, 0\)"),
    ((0, 6, 0, 0), r"index \(0, 6, 0, 0\) is outside the output of shape \(2, 6, 2, 3\)"),
    ((0, 0, -1, 0), r"outside the output"),
    ("0000", r"index must be"),
])
def test_bad_index_is_named(index, message):
    x, w = seed000(groups=1)
    with pytest.raises(ValueError, match=message):
        convkit.explain(x, w, index)


def test_cli_explain_and_demo(capsys):
    assert main(["explain", "--groups", "3", "--index", "0,1,0,0"]) == 0
    assert capsys.readouterr().out.strip().endswith("= 123.3577")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for expected in ["weight shape (6, 3, 3, 3)", "weight shape (6, 1, 3, 3)",
                     "output shape (2, 6, 2, 3)", "parameters   162", "parameters   54",
                     "= -132.6360", "= -105.5849", "= 123.3577", "288 parameters",
                     "36 parameters", "32 parameters", "68 = 36 + 32"]:
        assert expected in out, expected
