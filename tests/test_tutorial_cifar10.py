"""PyTorch's 60-minute blitz, "Training a classifier" (CIFAR-10), step by step with only the imports
changed, on a tiny CIFAR-10-shaped data set written to a temporary folder."""
import numpy as np
import pytest

import cnnlab as torch
import cnnlab.nn as nn
import cnnlab.nn.functional as F
import cnnlab.optim as optim
from cnnlab import vision  # torchvision's place
from cnnlab.vision import datasets, transforms
from _tutorial_data import make_cifar


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def test_train_and_test_a_cifar10_classifier(tmp_path):
    root = tmp_path / "data"
    make_cifar(root, per_batch=60)
    torch.manual_seed(0)
    transform = transforms.Compose(
        [transforms.ToTensor(),
         transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    batch_size = 4
    with pytest.warns(UserWarning, match="checksums differ"):  # tiny files, not the published ones
        trainset = datasets.CIFAR10(root=root, train=True, download=True, transform=transform)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=batch_size, shuffle=True, num_workers=2)
    with pytest.warns(UserWarning, match="checksums differ"):
        testset = datasets.CIFAR10(root=root, train=False, download=True, transform=transform)
    testloader = torch.utils.data.DataLoader(testset, batch_size=batch_size, shuffle=False, num_workers=2)
    classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
    assert len(trainset) == 300 and len(testset) == 60 and tuple(trainset.classes) == classes

    dataiter = iter(trainloader)
    images, labels = next(dataiter)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert -1.0 <= images.min().item() and images.max().item() <= 1.0
    assert ' '.join(f'{classes[labels[j]]:5s}' for j in range(batch_size))
    img = vision.utils.make_grid(images) / 2 + 0.5  # unnormalize, as the tutorial's imshow does
    npimg = img.numpy()
    assert np.transpose(npimg, (1, 2, 0)).shape == (36, 138, 3) and 0 <= npimg.min() and npimg.max() <= 1

    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for epoch in range(3):  # loop over the dataset multiple times
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels = data
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        losses.append(running_loss / len(trainloader))
    assert losses[-1] < losses[0]

    PATH = tmp_path / 'cifar_net.pth'
    torch.save(net.state_dict(), PATH)
    net = Net()
    net.load_state_dict(torch.load(PATH, weights_only=True))

    correct = 0
    total = 0
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predicted = torch.max(outputs.numpy(), 1)  # .data is the NumPy array; torch.max takes it
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    assert total == 60 and correct / total > 0.3  # chance is 0.1

    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predictions = torch.max(outputs, 1)
            for label, prediction in zip(labels, predictions):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1
    assert sum(correct_pred.values()) == correct and sum(total_pred.values()) == 60

    device = torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    assert str(device) == "cpu"
    net.to(device)
    inputs, labels = data[0].to(device), data[1].to(device)
    assert net(inputs).shape == (4, 10)


def test_cifar10_items_and_batches_agree(tmp_path):
    make_cifar(tmp_path, per_batch=8)
    with pytest.warns(UserWarning):
        raw = datasets.CIFAR10(tmp_path, train=False)
    img, label = raw[3]
    pixels = np.asarray(img)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8 and isinstance(label, int)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    with pytest.warns(UserWarning):
        ds = datasets.CIFAR10(tmp_path, train=False, transform=transform)
    x = ds[3][0].numpy()
    expected = (pixels.transpose(2, 0, 1) / np.float32(255) - np.array([0.5, 0.4, 0.3], np.float32)[:, None, None]) \
        / np.array([0.2, 0.25, 0.3], np.float32)[:, None, None]
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    batch, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))  # one batch at once
    np.testing.assert_array_equal(batch[3].numpy(), x)
    assert labels[3].item() == label
    with pytest.raises(RuntimeError, match="download=True"):
        datasets.CIFAR10(tmp_path / "nothing", train=True)


def test_cifar10_download_checks_the_md5_before_keeping_the_archive(tmp_path, monkeypatch):
    import hashlib
    import tarfile
    import cnnlab.data.cifar as cifar_mod
    import cnnlab.data.mnist as mnist_mod
    make_cifar(tmp_path / "src", per_batch=4)
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    urls = []

    def fake_download(url, path, sha256=None, progress=True):
        urls.append(url)
        path.write_bytes(archive.read_bytes())
        return path

    monkeypatch.setattr(mnist_mod, "download_file", fake_download)
    with pytest.raises(mnist_mod.ChecksumError, match="MD5 mismatch"):
        datasets.CIFAR10(tmp_path / "data", train=False, download=True)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert list((tmp_path / "data").iterdir()) == []  # nothing kept
    monkeypatch.setitem(cifar_mod.CIFAR10_MD5, "cifar-10-python.tar.gz",
                        hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.warns(UserWarning, match="checksums differ"):
        ds = datasets.CIFAR10(tmp_path / "data", train=False, download=True)
    assert len(ds) == 4 and (tmp_path / "data" / "cifar-10-python.tar.gz").is_file()


def test_make_grid_lays_out_a_batch_like_torchvision():
    from cnnlab.vision.utils import make_grid
    images = torch.arange(5 * 1 * 2 * 3, dtype=torch.float32).reshape(5, 1, 2, 3)
    grid = make_grid(images, nrow=2, padding=1, pad_value=-1)
    # 3 rows x 2 columns of (2+1) x (3+1) cells, plus one border row and column; grey becomes RGB
    assert grid.shape == (3, 3 * 3 + 1, 2 * 4 + 1)
    g = grid.numpy()
    for k in range(5):
        y, x = divmod(k, 2)
        for c in range(3):
            np.testing.assert_array_equal(g[c, y * 3 + 1:y * 3 + 3, x * 4 + 1:x * 4 + 4], images[k, 0].numpy())
    assert (g[:, 0, :] == -1).all() and (g[:, :, 0] == -1).all() and (g[:, 7:, 5:] == -1).all()
    assert make_grid(images[:1]).shape == (3, 2, 3)
    unit = make_grid(images * 2 + 10, nrow=5, normalize=True, padding=0).numpy()
    assert unit.min() == 0.0 and unit.max() == 1.0
    with pytest.raises(ValueError, match="expects images of shape"):
        make_grid(torch.zeros(1, 1, 1, 2, 2))
