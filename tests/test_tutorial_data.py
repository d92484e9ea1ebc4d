"""PyTorch's "Learn the basics: Datasets & DataLoaders" and "Transforms", step by step with only the
imports changed, on tiny Fashion-MNIST-shaped IDX files written to a temporary folder."""
import numpy as np
import pytest

import cnnlab as torch
from cnnlab.utils.data import Dataset, DataLoader, TensorDataset, random_split
from cnnlab.vision import datasets
from cnnlab.vision.transforms import ToTensor, Lambda
from _tutorial_data import make_mnist


def test_loading_a_dataset_and_iterating(tmp_path):
    arrays = make_mnist(tmp_path, "FashionMNIST", n_train=64, n_test=32)
    training_data = datasets.FashionMNIST(root=tmp_path, train=True, download=True, transform=ToTensor())
    test_data = datasets.FashionMNIST(root=tmp_path, train=False, download=True, transform=ToTensor())
    assert len(training_data) == 64 and len(test_data) == 32
    labels_map = {0: "T-Shirt", 1: "Trouser", 2: "Pullover", 3: "Dress", 4: "Coat", 5: "Sandal", 6: "Shirt",
                  7: "Sneaker", 8: "Bag", 9: "Ankle Boot"}
    torch.manual_seed(0)
    sample_idx = torch.randint(len(training_data), size=(1,)).item()
    img, label = training_data[sample_idx]
    assert labels_map[label] and img.shape == (1, 28, 28) and img.squeeze().shape == (28, 28)
    np.testing.assert_array_equal(img.squeeze().numpy(), arrays["train"][0][sample_idx] / np.float32(255))
    assert label == arrays["train"][1][sample_idx]

    train_dataloader = DataLoader(training_data, batch_size=16, shuffle=True)
    test_dataloader = DataLoader(test_data, batch_size=16, shuffle=True)
    train_features, train_labels = next(iter(train_dataloader))
    assert train_features.size() == torch.Size([16, 1, 28, 28]) and train_labels.size() == torch.Size([16])
    img = train_features[0].squeeze()
    label = train_labels[0]
    assert img.shape == (28, 28) and 0 <= label.item() <= 9
    seen = torch.cat([y for _, y in test_dataloader])
    assert sorted(seen.tolist()) == sorted(arrays["test"][1].tolist())  # every item once per epoch
    assert len(train_dataloader) == 4 and len(train_dataloader.dataset) == 64


def test_a_custom_dataset(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "images.npz", **{f"img_{i}": im for i, im in enumerate(images)})
    (tmp_path / "labels.csv").write_text("".join(f"img_{i},{i % 3}\n" for i in range(10)))

    class CustomImageDataset(Dataset):
        def __init__(self, annotations_file, img_dir, transform=None, target_transform=None):
            self.img_labels = [line.split(",") for line in annotations_file.read_text().splitlines()]
            self.img_dir = img_dir
            self.transform = transform
            self.target_transform = target_transform

        def __len__(self):
            return len(self.img_labels)

        def __getitem__(self, idx):
            name, label = self.img_labels[idx]
            with np.load(self.img_dir / "images.npz") as files:
                image = files[name]
            label = int(label)
            if self.transform:
                image = self.transform(image)
            if self.target_transform:
                label = self.target_transform(label)
            return image, label

    one_hot = Lambda(lambda y: torch.zeros(3, dtype=torch.float).scatter_(0, torch.tensor(y), value=1))
    ds = CustomImageDataset(tmp_path / "labels.csv", tmp_path, transform=ToTensor(), target_transform=one_hot)
    image, label = ds[4]
    assert image.shape == (1, 8, 8) and label.tolist() == [0.0, 1.0, 0.0]
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 1, 8, 8) and y.shape == (4, 3)
    np.testing.assert_array_equal(y.numpy().argmax(1), [0, 1, 2, 0])
    np.testing.assert_array_equal(x[1, 0].numpy(), images[1] / np.float32(255))


def test_tensor_dataset_random_split_and_collate():
    torch.manual_seed(0)
    X, y = torch.randn(20, 3), torch.arange(20)
    data = TensorDataset(X, y)
    train, val = random_split(data, [0.75, 0.25], generator=torch.Generator().manual_seed(42))
    assert (len(train), len(val)) == (15, 5)
    assert sorted(train.indices + val.indices) == list(range(20))
    again = random_split(data, [15, 5], generator=torch.Generator().manual_seed(42))
    assert again[0].indices == train.indices
    loader = DataLoader(train, batch_size=4, shuffle=False, drop_last=True)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    xb, yb = batches[0]
    np.testing.assert_array_equal(xb.numpy(), X.numpy()[train.indices[:4]])
    assert yb.tolist() == train.indices[:4]
    pairs = DataLoader([(1, 0.5), (2, 1.5)], batch_size=2)
    a, b = next(iter(pairs))
    assert a.dtype == torch.int64 and b.dtype == torch.float64  # PyTorch's default_collate
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(data, [10, 5])
    with pytest.raises(ValueError, match="Size mismatch between tensors"):
        TensorDataset(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(data, batch_size=0)


def test_split_and_shuffle_like_pytorch(torch):  # noqa: F811  (here ``torch`` is PyTorch)
    """random_split's fractional lengths give PyTorch's sizes (the order itself comes from another generator)."""
    for n, fractions in ((10, [0.3, 0.7]), (11, [0.5, 0.25, 0.25]), (7, [1 / 3, 1 / 3, 1 / 3])):
        theirs = torch.utils.data.random_split(range(n), fractions)
        ours = random_split(list(range(n)), fractions)
        assert [len(s) for s in ours] == [len(s) for s in theirs]


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(RuntimeError, match="not found in .*download=True"):
        datasets.MNIST(tmp_path, train=True)


def test_download_uses_the_checksum_checked_download(tmp_path, monkeypatch):
    import cnnlab.data.mnist as mnist_mod
    calls = []
    source = tmp_path / "source"
    make_mnist(source, "x", n_train=10, n_test=10)

    def fake_download(url, path, sha256=None, progress=True):
        calls.append((url, sha256))
        name = url.rsplit("/", 1)[1][:-3]
        path.write_bytes(__import__("gzip").compress((source / "x" / "raw" / name).read_bytes()))
        return path

    monkeypatch.setattr(mnist_mod, "download_file", fake_download)
    ds = datasets.MNIST(tmp_path / "data", train=False, download=True)
    assert len(ds) == 10 and len(calls) == 2
    assert all(sha == mnist_mod.SHA256["mnist"][url.rsplit("/", 1)[1]] for url, sha in calls)
    assert (tmp_path / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file()
