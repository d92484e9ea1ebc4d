"""PyTorch's "Learn the basics": build the model, optimization (train and test loops), save and load,
step by step with only the imports changed, on tiny Fashion-MNIST-shaped files."""
import numpy as np
import pytest

import cnnlab as torch
from cnnlab import nn
from cnnlab.utils.data import DataLoader
from cnnlab.vision import datasets
from cnnlab.vision.transforms import ToTensor
from _tutorial_data import make_mnist


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


def test_build_the_model():
    device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
    assert device == "cpu"
    torch.manual_seed(0)
    model = NeuralNetwork().to(device)
    assert "(flatten): Flatten(" in repr(model)
    X = torch.rand(1, 28, 28, device=device)
    logits = model(X)
    pred_probab = nn.Softmax(dim=1)(logits)
    y_pred = pred_probab.argmax(1)
    assert y_pred.shape == (1,) and abs(pred_probab.sum().item() - 1) < 1e-6
    input_image = torch.rand(3, 28, 28)
    flatten = nn.Flatten()
    flat_image = flatten(input_image)
    assert flat_image.size() == torch.Size([3, 784])
    layer1 = nn.Linear(in_features=28 * 28, out_features=20)
    hidden1 = layer1(flat_image)
    hidden1 = nn.ReLU()(hidden1)
    assert hidden1.size() == (3, 20) and hidden1.min().item() >= 0
    seq_modules = nn.Sequential(flatten, layer1, nn.ReLU(), nn.Linear(20, 10))
    logits = seq_modules(input_image)
    softmax = nn.Softmax(dim=1)
    pred_probab = softmax(logits)
    np.testing.assert_allclose(pred_probab.sum(1).numpy(), np.ones(3), rtol=1e-6)
    names = [name for name, param in model.named_parameters()]
    assert names[:2] == ["linear_relu_stack.0.weight", "linear_relu_stack.0.bias"]
    for name, param in model.named_parameters():
        assert f"Layer: {name} | Size: {param.size()} | Values : {param[:2]} \n"


def train_loop(dataloader, model, loss_fn, optimizer, batch_size):
    size = len(dataloader.dataset)
    model.train()
    reports = []
    for batch, (X, y) in enumerate(dataloader):
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if batch % 2 == 0:
            loss, current = loss.item(), batch * batch_size + len(X)
            reports.append(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")
    return reports


def test_loop(dataloader, model, loss_fn):
    model.eval()
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= num_batches
    correct /= size
    return test_loss, correct


test_loop.__test__ = False  # the tutorial's name for a helper, not a test


def test_optimization_then_save_and_load(tmp_path):
    make_mnist(tmp_path, "FashionMNIST", n_train=200, n_test=100)
    training_data = datasets.FashionMNIST(root=tmp_path, train=True, download=True, transform=ToTensor())
    test_data = datasets.FashionMNIST(root=tmp_path, train=False, download=True, transform=ToTensor())
    torch.manual_seed(0)
    learning_rate = 1e-1
    batch_size = 32
    epochs = 4
    train_dataloader = DataLoader(training_data, batch_size=batch_size, shuffle=True)
    test_dataloader = DataLoader(test_data, batch_size=batch_size)
    model = NeuralNetwork()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    before = test_loop(test_dataloader, model, loss_fn)
    for t in range(epochs):
        reports = train_loop(train_dataloader, model, loss_fn, optimizer, batch_size)
        after = test_loop(test_dataloader, model, loss_fn)
    assert reports[0].endswith("[   32/  200]")
    assert after[0] < before[0] and after[1] > 0.5, (before, after)

    torch.save(model.state_dict(), tmp_path / "model_weights.pth")
    model2 = NeuralNetwork()
    model2.load_state_dict(torch.load(tmp_path / "model_weights.pth", weights_only=True))
    model2.eval()
    assert test_loop(test_dataloader, model2, loss_fn) == after
    with pytest.raises(TypeError, match="does not save a whole model .*state_dict"):
        torch.save(model, tmp_path / "model.pth")
    assert not (tmp_path / "model.pth").exists()

    checkpoint = {"epoch": epochs, "model_state_dict": model.state_dict(),
                  "optimizer_state_dict": optimizer.state_dict(), "loss": after[0]}
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    loaded = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert loaded["epoch"] == epochs and loaded["loss"] == after[0]
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=0.5)
    optimizer2.load_state_dict(loaded["optimizer_state_dict"])
    assert optimizer2.param_groups[0]["lr"] == learning_rate


def test_a_pytorch_pickle_is_refused_with_a_way_out(tmp_path, torch):  # noqa: F811  (PyTorch here)
    path = tmp_path / "model_weights.pth"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    import cnnlab
    with pytest.raises(ValueError, match="is a PyTorch pickle file .*never loads pickle.*numpy.savez"):
        cnnlab.load(path, weights_only=True)
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in torch.load(path, weights_only=True).items()})
    model = cnnlab.nn.Linear(2, 3)
    model.load_state_dict(cnnlab.load(tmp_path / "w.npz"))
    np.testing.assert_array_equal(model.weight.numpy(), torch.load(path)["weight"].numpy())


def test_save_load_round_trip_and_bad_files(tmp_path):
    import io
    import pickle
    state = {"w": torch.tensor([[1.0, 2.0]], requires_grad=True), "n": 3, "name": "x", "none": None,
             "nested": [(1, 2.5), {"a": np.arange(3)}], 7: True}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    back = torch.load(buffer)
    assert back["n"] == 3 and back["name"] == "x" and back["none"] is None and back[7] is True
    assert back["nested"][0] == (1, 2.5) and back["nested"][1]["a"].tolist() == [0, 1, 2]
    assert isinstance(back["w"], torch.Tensor) and back["w"].requires_grad and back["w"].tolist() == [[1.0, 2.0]]
    (tmp_path / "old.pth").write_bytes(pickle.dumps({"w": 1}, protocol=2))
    with pytest.raises(ValueError, match="PyTorch pickle file"):
        torch.load(tmp_path / "old.pth")
    (tmp_path / "junk.pth").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a file written by cnnlab.save"):
        torch.load(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        torch.load(tmp_path / "nope.pth")
    with pytest.raises(TypeError, match="cannot save set"):
        torch.save({1, 2}, tmp_path / "s.pth")
    with pytest.raises(RuntimeError, match="CPU only"):
        torch.load(buffer, map_location="cuda:0")
