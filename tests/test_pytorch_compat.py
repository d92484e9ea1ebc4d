"""The PyTorch names the tutorials lean on, unit by unit: devices, scatter_, Generator, module paths."""
import numpy as np
import pytest

import cnnlab
from cnnlab import nn


def test_device_objects():
    cpu = cnnlab.device("cpu")
    assert cpu == "cpu" and cpu == cnnlab.device(cpu) and cpu.type == "cpu" and cpu.index is None
    gpu = cnnlab.device("cuda", 1)
    assert str(gpu) == "cuda:1" and gpu == cnnlab.device("cuda:1") and gpu != cpu
    assert repr(gpu) == "device(type='cuda', index=1)" and hash(gpu) == hash(cnnlab.device("cuda:1"))
    assert cnnlab.device(0) == "cuda:0"
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        cnnlab.device("tpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        cnnlab.device("cuda:x")
    assert cnnlab.cuda.is_available() is False and cnnlab.cuda.device_count() == 0
    cnnlab.cuda.manual_seed_all(0)  # nothing to seed, as in PyTorch without a GPU
    x = cnnlab.ones(2)
    assert x.device == cpu and x.to(cpu) is x and x.to(cpu, cnnlab.float64).dtype == np.float64
    model = nn.Linear(2, 2)
    assert model.to(cpu) is model
    with pytest.raises(RuntimeError, match="CPU only.*'cuda:1'"):
        x.to(gpu)
    with pytest.raises(RuntimeError, match="CPU only"):
        cnnlab.zeros(2, device=gpu)
    with pytest.raises(RuntimeError, match=r"CPU only: cuda\(\) is not available"):
        x.cuda()


def test_module_paths_of_pytorch():
    import cnnlab.nn.functional as F
    assert F is cnnlab.functional and cnnlab.nn.functional is cnnlab.functional
    assert cnnlab.utils.data.DataLoader.__module__ == "cnnlab.utils.data"
    assert cnnlab.vision.transforms.ToTensor and cnnlab.optim.Adadelta


@pytest.mark.parametrize("case", ["value-1d", "src-2d-dim1", "src-2d-dim0"])
def test_scatter_matches_torch(torch, case):
    rng = np.random.default_rng(0)
    if case == "value-1d":
        make = lambda lib: lib.zeros(10).scatter_(0, lib.tensor([3, 7]), value=1.5)  # noqa: E731
    elif case == "src-2d-dim1":
        src, index = rng.standard_normal((3, 4)), np.array([[0, 4], [2, 1], [3, 3]])
        make = lambda lib: lib.zeros(3, 5, dtype=lib.float64).scatter_(  # noqa: E731
            1, lib.tensor(index), lib.tensor(src))
    else:
        src, index = rng.standard_normal((2, 5)), np.array([[0, 1, 2, 0, 0], [2, 0, 0, 1, 2]])
        make = lambda lib: lib.zeros(3, 5, dtype=lib.float64).scatter_(  # noqa: E731
            0, lib.tensor(index), lib.tensor(src))
    np.testing.assert_array_equal(make(cnnlab).numpy(), make(torch).numpy())


def test_scatter_errors():
    with pytest.raises(RuntimeError, match="out of bounds for dimension 0 with size 3"):
        cnnlab.zeros(3).scatter_(0, cnnlab.tensor([5]), value=1)
    with pytest.raises(TypeError, match="exactly one of `src` or `value`"):
        cnnlab.zeros(3).scatter_(0, cnnlab.tensor([1]))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        cnnlab.zeros(3, requires_grad=True).scatter_(0, cnnlab.tensor([1]), value=1)


def test_generator_streams_are_reproducible_and_separate():
    a = cnnlab.Generator().manual_seed(5)
    b = cnnlab.Generator().manual_seed(5)
    assert a.initial_seed() == 5
    assert np.array_equal(a.rng.permutation(10), b.rng.permutation(10))
    with pytest.raises(TypeError, match="cnnlab.Generator or None"):
        cnnlab.utils.data.random_split([1, 2], [1, 1], generator=5)


def test_div_and_add_like_torch(torch):
    for kw in (dict(), dict(rounding_mode="floor"), dict(rounding_mode="trunc")):
        a, b = np.array([7, -7, 5]), np.array([2, 2, -3])
        ours, theirs = cnnlab.div(cnnlab.tensor(a), cnnlab.tensor(b), **kw), torch.div(torch.tensor(a), torch.tensor(b), **kw)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy())
        assert ours.dtype.kind == theirs.numpy().dtype.kind
    np.testing.assert_allclose(cnnlab.add(cnnlab.ones(2), cnnlab.ones(2), alpha=3).numpy(),
                               torch.add(torch.ones(2), torch.ones(2), alpha=3).numpy())
    np.testing.assert_allclose(cnnlab.sub(cnnlab.ones(2), cnnlab.ones(2), alpha=3).numpy(), [-2, -2])
