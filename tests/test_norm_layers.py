"""LayerNorm, GroupNorm, InstanceNorm and Slice: naive loops, float64 gradients, PyTorch parity."""
from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor, nn, no_grad
from conftest import gradcheck, torch_parity

rng = np.random.default_rng(0)


def _naive_norm(values, eps):
    """One group's values normalised by explicit sums (no NumPy reductions)."""
    flat = list(values.reshape(-1))
    mean = sum(flat) / len(flat)
    var = sum((v - mean) ** 2 for v in flat) / len(flat)
    return (values - mean) / np.sqrt(var + eps)


def test_layer_norm_matches_a_loop_over_samples():
    x, w, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    expected = np.empty_like(x)
    for n in range(2):
        for c in range(3):
            expected[n, c] = _naive_norm(x[n, c], 1e-5) * w + b
    np.testing.assert_allclose(F.layer_norm(Tensor(x), (4, 5), Tensor(w), Tensor(b)).numpy(), expected, atol=1e-12)


def test_group_norm_matches_a_loop_over_groups():
    x, w, b = rng.standard_normal((2, 6, 3, 4)), rng.standard_normal(6), rng.standard_normal(6)
    expected = np.empty_like(x)
    for n in range(2):
        for g in range(3):
            expected[n, 2 * g:2 * g + 2] = _naive_norm(x[n, 2 * g:2 * g + 2], 1e-5)
    for c in range(6):
        expected[:, c] = expected[:, c] * w[c] + b[c]
    np.testing.assert_allclose(F.group_norm(Tensor(x), 3, Tensor(w), Tensor(b)).numpy(), expected, atol=1e-12)


def test_instance_norm_matches_a_loop_over_channels():
    x, w, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal(3), rng.standard_normal(3)
    expected = np.empty_like(x)
    for n in range(2):
        for c in range(3):
            expected[n, c] = _naive_norm(x[n, c], 1e-3) * w[c] + b[c]
    got = F.instance_norm(Tensor(x), Tensor(w), Tensor(b), eps=1e-3).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("case", ["layer", "layer_chw", "group", "instance"])
def test_gradients_float64(case):
    x = rng.standard_normal((2, 4, 3, 3))
    if case == "layer":
        gradcheck(lambda x, w, b: F.layer_norm(x, (3,), w, b), [x, rng.standard_normal(3), rng.standard_normal(3)])
    elif case == "layer_chw":
        gradcheck(lambda x, w, b: F.layer_norm(x, (4, 3, 3), w, b),
                  [x, rng.standard_normal((4, 3, 3)), rng.standard_normal((4, 3, 3))])
    elif case == "group":
        gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [x, rng.standard_normal(4), rng.standard_normal(4)])
    else:
        gradcheck(lambda x, w, b: F.instance_norm(x, w, b), [x, rng.standard_normal(4), rng.standard_normal(4)])


def test_slice_gradient_and_negative_steps():
    x = rng.standard_normal((2, 7, 3))
    gradcheck(lambda x: nn.Slice(1, -2, None, -3)(x), [x])
    np.testing.assert_array_equal(nn.Slice(1, -2, None, -3)(Tensor(x)).numpy(), x[:, -2::-3])
    np.testing.assert_array_equal(nn.Slice(2, 1, 100)(Tensor(x)).numpy(), x[:, :, 1:])
    np.testing.assert_array_equal(nn.Slice(-1, -100, -1)(Tensor(x)).numpy(), x[:, :, -100:-1])
    assert nn.Slice(1, -2, None, -3).output_shape((1, 7, 3)) == (1, 2, 3)
    assert nn.Slice(1, 0, 4).output_shape((1, 7, 3)) == (1, 4, 3)


def test_slice_bounds_follow_onnx_clamping():
    from cnnlab.nn.norm_layers import slice_bounds
    a = list(range(5))
    assert a[slice_bounds(5, 10, -10 ** 9, -1)] == [4, 3, 2, 1, 0]   # through index 0
    assert a[slice_bounds(5, -1, -6, -2)] == [4, 2, 0]
    assert a[slice_bounds(5, -3, 2 ** 62, 1)] == [2, 3, 4]
    assert a[slice_bounds(5, -100, 2, 1)] == [0, 1]


def test_bad_inputs_name_expected_and_received():
    with pytest.raises(ValueError, match=r"does not end with normalized_shape \(4,\)"):
        F.layer_norm(Tensor(np.zeros((2, 3))), (4,))
    with pytest.raises(ValueError, match="dividing the 6 channels"):
        F.group_norm(Tensor(np.zeros((2, 6, 2, 2))), 4)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        nn.InstanceNorm2d(3)(Tensor(np.zeros((2, 4, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="batch"):
        nn.Slice(0, 0, 1).output_shape((2, 3))


def test_layers_save_and_load_as_model_files(tmp_path):
    from cnnlab.io import load_model, save_model
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.InstanceNorm2d(4, affine=True),
                          nn.Permute((0, 2, 3, 1)), nn.LayerNorm(4, eps=1e-6), nn.Permute((0, 3, 1, 2)),
                          nn.Slice(1, 1, None, 2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    for p in model.parameters():
        p.numpy()[...] = rng.standard_normal(p.shape)
    save_model(model, tmp_path / "run", (1, 6, 6))
    back = load_model(tmp_path / "run").model
    x = Tensor(rng.standard_normal((2, 1, 6, 6)).astype(np.float32))
    with no_grad():
        np.testing.assert_array_equal(back(x).numpy(), model.eval()(x).numpy())


# --- PyTorch parity ---------------------------------------------------------------------------
def test_layer_norm_matches_pytorch(torch):
    x, w, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal(5), rng.standard_normal(5)
    torch_parity(torch, lambda x, w, b: F.layer_norm(x, (5,), w, b, 1e-6),
                 lambda x, w, b: torch.nn.functional.layer_norm(x, (5,), w, b, 1e-6), [x, w, b])


def test_group_and_instance_norm_match_pytorch(torch):
    x, w, b = rng.standard_normal((2, 6, 3, 4)), rng.standard_normal(6), rng.standard_normal(6)
    torch_parity(torch, lambda x, w, b: F.group_norm(x, 3, w, b),
                 lambda x, w, b: torch.nn.functional.group_norm(x, 3, w, b), [x, w, b])
    torch_parity(torch, lambda x, w, b: F.instance_norm(x, w, b),
                 lambda x, w, b: torch.nn.functional.instance_norm(x, weight=w, bias=b), [x, w, b])


def test_layers_match_pytorch_modules(torch):
    x = rng.standard_normal((2, 6, 3, 4)).astype(np.float32)
    pairs = [(nn.LayerNorm((3, 4), eps=1e-6, bias=False), torch.nn.LayerNorm((3, 4), eps=1e-6, bias=False)),
             (nn.GroupNorm(3, 6), torch.nn.GroupNorm(3, 6)),
             (nn.InstanceNorm2d(6, affine=True), torch.nn.InstanceNorm2d(6, affine=True))]
    for ours, theirs in pairs:
        for name, p in theirs.named_parameters():
            with torch.no_grad():
                p.uniform_(-1, 1)
            getattr(ours, name).numpy()[...] = p.detach().numpy()
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict()), type(ours)
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)
