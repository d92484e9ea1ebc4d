"""Random class-loss configurations (Hypothesis): empty batches, ignored targets, weights, label
smoothing, per-pixel inputs -- values and gradients against PyTorch."""
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

REDUCTIONS = ("mean", "sum", "none")
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(n=st.integers(0, 4), c=st.integers(1, 5), spatial=st.lists(st.integers(0, 3), max_size=2),
                  weighted=st.booleans(), ignore=st.sampled_from([-100, 0, 2]), eps=st.sampled_from([0.0, 0.1, 1.0]),
                  reduction=st.sampled_from(REDUCTIONS), seed=st.integers(0, 2 ** 16))
def test_random_class_losses_match_torch(n, c, spatial, weighted, ignore, eps, reduction, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *spatial)) * 3
    t = rng.integers(0, c, size=(n, *spatial))
    t[rng.uniform(size=t.shape) < 0.3] = ignore
    w = rng.uniform(0, 2, size=c) if weighted else None
    tw = None if w is None else torch.from_numpy(w)
    kwargs = dict(ignore_index=ignore, reduction=reduction)
    ours, theirs = [Tensor(x, requires_grad=True) for _ in range(2)], [torch.tensor(x, requires_grad=True)
                                                                       for _ in range(2)]
    with np.errstate(all="raise"):
        outs = [F.cross_entropy(ours[0], t, w, label_smoothing=eps, **kwargs), F.nll_loss(ours[1], t, w, **kwargs)]
    t_outs = [torch.nn.functional.cross_entropy(theirs[0], torch.from_numpy(t), tw, label_smoothing=eps, **kwargs),
              torch.nn.functional.nll_loss(theirs[1], torch.from_numpy(t), tw, **kwargs)]
    for a, b, xa, xb in zip(outs, t_outs, ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(a.shape)
        a.backward(g)
        b.backward(torch.from_numpy(g))
        np.testing.assert_allclose(xa.grad, xb.grad.numpy(), rtol=1e-10, atol=1e-12)
