"""Loss modules (nn.CrossEntropyLoss, ...): PyTorch's constructor arguments stored as attributes,
weights as buffers, values and gradients equal to PyTorch's modules, output_shape, errors."""
import numpy as np
import pytest

from cnnlab import Tensor, nn

from conftest import torch_parity

RNG = np.random.default_rng(8)


def _modules(torch):
    w3 = RNG.uniform(0.5, 2, size=3)
    t3 = torch.from_numpy(w3)
    return [
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), "labels"),
        (nn.CrossEntropyLoss(weight=w3, ignore_index=1, reduction="sum", label_smoothing=0.2),
         torch.nn.CrossEntropyLoss(weight=t3, ignore_index=1, reduction="sum", label_smoothing=0.2), "labels"),
        (nn.CrossEntropyLoss(weight=w3, reduction="none"), torch.nn.CrossEntropyLoss(weight=t3, reduction="none"),
         "labels"),
        (nn.CrossEntropyLoss(label_smoothing=0.1), torch.nn.CrossEntropyLoss(label_smoothing=0.1), "probabilities"),
        (nn.NLLLoss(weight=w3, ignore_index=0), torch.nn.NLLLoss(weight=t3, ignore_index=0), "labels"),
        (nn.NLLLoss(reduction="none"), torch.nn.NLLLoss(reduction="none"), "labels"),
        (nn.MSELoss(), torch.nn.MSELoss(), "values"),
        (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), "values"),
        (nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), "values"),
        (nn.HuberLoss(reduction="none", delta=0.7), torch.nn.HuberLoss(reduction="none", delta=0.7), "values"),
        (nn.BCELoss(weight=np.ones((1, 3, 1, 1)) * 2), torch.nn.BCELoss(weight=torch.ones(1, 3, 1, 1) * 2),
         "probability inputs"),
        (nn.BCEWithLogitsLoss(pos_weight=np.array([[[2.0]], [[0.5]], [[1.5]]])),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([[[2.0]], [[0.5]], [[1.5]]], dtype=torch.float64)),
         "binary"),
        (nn.BCEWithLogitsLoss(weight=np.full(4, 0.5), reduction="none"),
         torch.nn.BCEWithLogitsLoss(weight=torch.full((4,), 0.5, dtype=torch.float64), reduction="none"), "binary"),
    ]


def _data(kind):
    x = RNG.standard_normal((2, 3, 5, 4))
    if kind == "labels":
        return x, RNG.integers(0, 3, size=(2, 5, 4))
    if kind == "probabilities":
        q = RNG.uniform(0, 1, size=x.shape)
        return x, q / q.sum(axis=1, keepdims=True)
    if kind == "probability inputs":
        return RNG.uniform(0.05, 0.95, size=x.shape), RNG.uniform(0, 1, size=x.shape)
    if kind == "binary":
        return x, RNG.integers(0, 2, size=x.shape).astype(float)
    return x, RNG.standard_normal(x.shape)


def test_loss_modules_match_torch(torch):
    for seed, (ours, theirs, kind) in enumerate(_modules(torch)):
        x, t = _data(kind)
        out, _ = torch_parity(torch, lambda a: ours(a, t), lambda a: theirs(a, torch.from_numpy(t)), [x], seed=seed)
        assert out.shape == ours.output_shape(x.shape), ours


def test_nll_after_log_softmax_is_cross_entropy():
    x, t = _data("labels")
    w = np.array([1.0, 2.0, 0.5])
    chain = nn.Sequential(nn.LogSoftmax(dim=1))
    np.testing.assert_allclose(nn.NLLLoss(weight=w)(chain(Tensor(x)), t).numpy(),
                               nn.CrossEntropyLoss(weight=w)(x, t).numpy(), rtol=1e-13)


def test_constructor_arguments_are_attributes_and_weights_are_buffers():
    loss = nn.CrossEntropyLoss(weight=[1, 2, 3], ignore_index=4, reduction="sum", label_smoothing=0.25)
    assert (loss.ignore_index, loss.reduction, loss.label_smoothing) == (4, "sum", 0.25)
    assert list(loss.state_dict()) == ["weight"] and loss.weight.dtype == np.float32
    assert list(loss.parameters()) == []
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    bce = nn.BCEWithLogitsLoss(pos_weight=np.array([3.0]))
    assert list(bce.state_dict()) == ["pos_weight"] and bce.weight is None
    assert (nn.SmoothL1Loss(beta=0.3).beta, nn.HuberLoss(delta=2).delta) == (0.3, 2.0)
    assert repr(nn.MSELoss()) == "MSELoss()" and repr(nn.L1Loss(reduction="sum")) == "L1Loss(reduction='sum')"


def test_output_shapes():
    assert nn.CrossEntropyLoss().output_shape((8, 10)) == ()
    assert nn.CrossEntropyLoss(reduction="none").output_shape((8, 10)) == (8,)
    assert nn.NLLLoss(reduction="none").output_shape((8, 10, 32, 32)) == (8, 32, 32)
    assert nn.CrossEntropyLoss(reduction="none").output_shape((10,)) == ()
    assert nn.MSELoss(reduction="none").output_shape((4, 3)) == (4, 3)
    assert nn.BCEWithLogitsLoss().output_shape((4, 3)) == ()


def test_deprecated_arguments_map_to_reduction():
    with pytest.warns(UserWarning, match=r"please use reduction='sum' instead"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning, match=r"please use reduction='none' instead"):
        assert nn.CrossEntropyLoss(reduce=False).reduction == "none"


def test_loss_module_errors():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: reduction must be one of \('mean', 'sum', 'none'\), "
                                         r"got 'avg'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 2"):
        nn.CrossEntropyLoss(label_smoothing=2)
    with pytest.raises(ValueError, match=r"NLLLoss: weight must hold one value per class, shape \(C,\), got shape "
                                         r"\(2, 2\)"):
        nn.NLLLoss(weight=np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"CrossEntropyLoss: weight must be an array of weights, got 'sum'; pass the "
                                        r"reduction by name"):
        nn.CrossEntropyLoss("sum")
    with pytest.raises(TypeError, match=r"NLLLoss: ignore_index must be an integer, got None"):
        nn.NLLLoss(ignore_index=None)
    with pytest.raises(ValueError, match=r"HuberLoss: delta must be a number > 0, got -1"):
        nn.HuberLoss(delta=-1)
    with pytest.raises(ValueError, match=r"SmoothL1Loss: beta must be a number >= 0, got -0.5"):
        nn.SmoothL1Loss(beta=-0.5)
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight of shape \(4,\) does not "
                                         r"broadcast to the input's shape \(2, 3\)"):
        nn.BCEWithLogitsLoss(pos_weight=np.ones(4))(np.zeros((2, 3)), np.zeros((2, 3)))


def test_a_training_step_with_a_loss_module(torch):
    """The loop a PyTorch user writes: criterion(model(x), y).backward(); same gradients as torch."""
    from cnnlab import optim
    x = RNG.standard_normal((6, 4))
    y = RNG.integers(0, 3, size=6)
    model = nn.Linear(4, 3).double()
    t_model = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        t_model.weight.copy_(torch.from_numpy(model.weight.numpy()))
        t_model.bias.copy_(torch.from_numpy(model.bias.numpy()))
    opt, t_opt = optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(t_model.parameters(), lr=0.5)
    criterion = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0]), label_smoothing=0.1)
    t_criterion = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                                            label_smoothing=0.1)
    for _ in range(3):
        opt.zero_grad()
        criterion(model(Tensor(x)), y).backward()
        opt.step()
        t_opt.zero_grad()
        t_criterion(t_model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        t_opt.step()
    np.testing.assert_allclose(model.weight.numpy(), t_model.weight.detach().numpy(), rtol=1e-12)
