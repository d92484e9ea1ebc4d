"""Gradient saliency, Grad-CAM and the layer-by-layer helpers of cnnlab.explain.

Saliency is checked against central differences of the class score and
against PyTorch's autograd; Grad-CAM against the same computation written in
PyTorch (forward hook on the chosen layer), and the bilinear resize against
``torch.nn.functional.interpolate``.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor, nn, no_grad
from cnnlab.explain import features, saliency
from cnnlab.random import manual_seed


def _model(dtype=np.float64):
    manual_seed(3)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(3, 4, 3, dtype=dtype), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5, dtype=dtype))
    m.eval()
    return m


def _images(n=2, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(dtype)


def _scores(model, x):
    with no_grad():
        return model(Tensor(x)).numpy()


# ------------------------------------------------------------------ layer helpers
def test_named_layers_opens_nested_sequentials():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)), nn.Flatten())
    assert [n for n, _ in features.named_layers(m)] == ["0", "1.0", "1.1", "2"]
    assert isinstance(features.find_layer(m, "1.1")[1], nn.MaxPool2d)
    assert features.find_layer(m, 0)[0] == "0"
    with pytest.raises(ValueError, match=r"no layer 7; its layers are: 0 Conv2d, 1.0 ReLU"):
        features.find_layer(m, 7)


def test_layer_outputs_end_with_the_model_output():
    m = _model()
    x = _images()
    outs = features.layer_outputs(m, x)
    assert [o.kind for o in outs] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Flatten", "Linear"]
    assert outs[2].output.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(outs[-1].output, _scores(m, x))
    upto = features.layer_outputs(m, x, upto="2")
    assert len(upto) == 3
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\).*shape \(8, 8\)"):
        features.layer_outputs(m, np.zeros((8, 8)))


def test_conv_kernel_picks_filter_and_channel():
    m = _model()
    k, b, text = features.conv_kernel(m, 0, 2)
    np.testing.assert_array_equal(k, m[0].weight.numpy()[2, 0])
    assert b == pytest.approx(float(m[0].bias.numpy()[2]))
    assert "layer 0" in text and "filter 2" in text
    k3, b3, _ = features.conv_kernel(m, "3", 1)
    assert k3.shape == (3, 3, 3) and b3 == pytest.approx(float(m[3].bias.numpy()[1]))
    k1, b1, text1 = features.conv_kernel(m, 3, 1, in_channel=2)
    np.testing.assert_array_equal(k1, m[3].weight.numpy()[1, 2])
    assert b1 == 0.0 and "bias left out" in text1
    with pytest.raises(ValueError, match=r"layer 1 is ReLU, not a Conv2d; the convolution layers are 0, 3"):
        features.conv_kernel(m, 1, 0)
    with pytest.raises(ValueError, match=r"between 0 and 2 \(it has 3 filters\), got 3"):
        features.conv_kernel(m, 0, 3)
    with pytest.raises(ValueError, match=r"in_channel must be between 0 and 2"):
        features.conv_kernel(m, 3, 0, in_channel=5)


def test_probabilities_from_scores_softmax_and_logsoftmax():
    s = np.array([[2.5, 1.8, 0.2], [1000.0, 0.0, -1000.0]])
    p = features.to_probabilities(s)
    np.testing.assert_allclose(p[0], [0.6262, 0.3110, 0.0628], atol=1e-4)  # the articles' softmax example
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(features.to_probabilities(np.log(p[:1]), nn.LogSoftmax(dim=1)), p[:1])
    np.testing.assert_allclose(features.to_probabilities(p, nn.Softmax(dim=1)), p)
    m = _model()
    np.testing.assert_allclose(features.predict_proba(m, _images(3), batch_size=2),
                               features.to_probabilities(_scores(m, _images(3))))


# ------------------------------------------------------------------ saliency
def test_saliency_equals_central_differences_of_the_class_score():
    m = _model()
    x = _images(2)
    res = saliency.saliency_map(m, x, target=[1, 4])
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):  # plain-loop reference, 128 pixels
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        t = [1, 4][idx[0]]
        num[idx] = (_scores(m, xp)[idx[0], t] - _scores(m, xm)[idx[0], t]) / (2 * eps)
    np.testing.assert_allclose(res.gradient, num, atol=1e-7)
    np.testing.assert_allclose(res.saliency, np.abs(num).max(axis=1), atol=1e-7)
    np.testing.assert_array_equal(res.target, [1, 4])


def test_saliency_defaults_to_the_predicted_class_and_restores_parameter_grads():
    m = _model()
    x = _images(3)
    before = [p.grad for p in m.parameters()]
    res = saliency.saliency_map(m, x)
    np.testing.assert_array_equal(res.target, _scores(m, x).argmax(axis=1))
    np.testing.assert_allclose(res.probabilities.sum(axis=1), 1.0)
    assert [p.grad for p in m.parameters()] == before
    assert res.saliency.shape == (3, 8, 8)


def test_saliency_target_errors():
    m = _model()
    with pytest.raises(ValueError, match=r"class 5 does not exist: the model has 5 classes \(0-4\)"):
        saliency.saliency_map(m, _images(1), target=5)
    with pytest.raises(ValueError, match=r"one class per image \(2\), got 3"):
        saliency.saliency_map(m, _images(2), target=[0, 1, 2])
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\)"):
        saliency.saliency_map(m, np.zeros((1, 8, 8)))


def _torch_model(torch, m):
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16, 5))
    tm = tm.double()
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in m.state_dict().items()})
    return tm.eval()


def test_saliency_and_grad_cam_match_pytorch(torch):
    m = _model()
    x = _images(2, seed=1)
    tm = _torch_model(torch, m)
    targets = [0, 3]
    # saliency
    xt = torch.tensor(x, requires_grad=True)
    out = tm(xt)
    out[torch.arange(2), torch.tensor(targets)].sum().backward()
    res = saliency.saliency_map(m, x, targets)
    np.testing.assert_allclose(res.gradient, xt.grad.numpy(), atol=1e-10)
    # Grad-CAM at layer 4 (the ReLU after the last conv): the usual hook-based implementation
    store = {}

    def hook(module, inputs, output):
        output.retain_grad()
        store["a"] = output

    handle = tm[4].register_forward_hook(hook)
    out = tm(torch.tensor(x))
    out[torch.arange(2), torch.tensor(targets)].sum().backward()
    handle.remove()
    a, g = store["a"].detach(), store["a"].grad
    alpha = g.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(dim=1))
    res = saliency.grad_cam(m, x, targets)
    assert res.layer == "4"
    np.testing.assert_allclose(res.weights, alpha[:, :, 0, 0].numpy(), atol=1e-10)
    np.testing.assert_allclose(res.cam, cam.numpy(), atol=1e-10)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    scaled = torch.where(peak > 0, cam / peak.clamp_min(1e-300), torch.zeros_like(cam))
    up = torch.nn.functional.interpolate(scaled[:, None], size=(8, 8), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(res.heatmap, up[:, 0].clamp(0, 1).numpy(), atol=1e-10)


def test_default_cam_layer_is_the_end_of_the_last_conv_block():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.GlobalAvgPool2d(), nn.Linear(2, 3))
    assert saliency.default_cam_layer(m) == "6"
    with pytest.raises(ValueError, match=r"Grad-CAM needs a convolution layer, but the model has none"):
        saliency.default_cam_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_grad_cam_on_a_chosen_layer_and_errors():
    m = _model()
    x = _images(2, np.float32)
    res = saliency.grad_cam(m, x, layer=2)
    assert res.cam.shape == (2, 4, 4) and res.heatmap.shape == (2, 8, 8)
    assert res.heatmap.min() >= 0 and res.heatmap.max() <= 1
    with pytest.raises(ValueError, match=r"layer 5 \(Flatten\) outputs shape \(2, 16\)"):
        saliency.grad_cam(m, x, layer=5)


def test_resize_bilinear_matches_pytorch_interpolate(torch):
    a = np.random.default_rng(0).random((2, 3, 5))
    for size in [(7, 11), (3, 5), (12, 4)]:
        ref = torch.nn.functional.interpolate(torch.tensor(a)[:, None], size=size, mode="bilinear",
                                              align_corners=False)[:, 0].numpy()
        np.testing.assert_allclose(saliency.resize_bilinear(a, size), ref, atol=1e-12)
    assert saliency.resize_bilinear(a[0], (6, 10)).shape == (6, 10)
