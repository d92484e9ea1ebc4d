"""PyTorch's classic MNIST example script (a CNN with dropout, Adadelta, StepLR, argparse flags), with only
the imports changed, run for one short epoch on tiny MNIST-shaped files; a few steps against PyTorch."""
import argparse

import numpy as np
import pytest

import cnnlab as torch
import cnnlab.nn as nn
import cnnlab.nn.functional as F
import cnnlab.optim as optim
from cnnlab.vision import datasets, transforms
from cnnlab.optim.lr_scheduler import StepLR
from _tutorial_data import make_mnist


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch, log):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            log.append('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def run_test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, correct


def main(argv, data_root, out_dir):
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--test-batch-size', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=14)
    parser.add_argument('--lr', type=float, default=1.0)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--no-accel', action='store_true')
    parser.add_argument('--dry-run', action='store_true')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--save-model', action='store_true')
    args = parser.parse_args(argv)

    use_accel = not args.no_accel and torch.accelerator.is_available()
    torch.manual_seed(args.seed)
    if use_accel:
        device = torch.accelerator.current_accelerator()
    else:
        device = torch.device("cpu")

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    if use_accel:
        accel_kwargs = {'num_workers': 1, 'pin_memory': True, 'shuffle': True}
        train_kwargs.update(accel_kwargs)
        test_kwargs.update(accel_kwargs)

    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,))
    ])
    dataset1 = datasets.MNIST(data_root, train=True, download=True, transform=transform)
    dataset2 = datasets.MNIST(data_root, train=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    log, results = [], []
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch, log)
        results.append(run_test(model, device, test_loader))
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), out_dir / "mnist_cnn.pt")
    return model, log, results, optimizer


def test_the_mnist_example_runs_and_learns(tmp_path):
    make_mnist(tmp_path / "data", n_train=256, n_test=100)
    model, log, results, optimizer = main(
        ["--epochs", "2", "--batch-size", "32", "--test-batch-size", "50", "--log-interval", "4", "--save-model"],
        tmp_path / "data", tmp_path)
    assert log[0].startswith("Train Epoch: 1 [0/256 (0%)]\tLoss: ") and len(log) == 4
    (loss1, correct1), (loss2, correct2) = results
    assert correct2 >= 60, results  # of 100; chance is 10
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.49)
    again = Net()
    again.load_state_dict(torch.load(tmp_path / "mnist_cnn.pt", weights_only=True))
    for (name, p), q in zip(model.named_parameters(), again.parameters()):
        assert torch.equal(p, q), name


def test_the_mnist_example_steps_match_pytorch(tmp_path, torch):  # noqa: F811  (here ``torch`` is PyTorch)
    import cnnlab
    make_mnist(tmp_path, n_train=48, n_test=10)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    loader = cnnlab.utils.data.DataLoader(datasets.MNIST(tmp_path, transform=transform), batch_size=16)
    cnnlab.manual_seed(3)
    ours = Net().double()
    ours.dropout1.p = ours.dropout2.p = 0.0  # the random masks cannot agree; everything else must

    tnn, tF = torch.nn, torch.nn.functional

    class TNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, 32, 3, 1), tnn.Conv2d(32, 64, 3, 1)
            self.fc1, self.fc2 = tnn.Linear(9216, 128), tnn.Linear(128, 10)

        def forward(self, x):
            x = tF.max_pool2d(tF.relu(self.conv2(tF.relu(self.conv1(x)))), 2)
            x = tF.relu(self.fc1(torch.flatten(x, 1)))
            return tF.log_softmax(self.fc2(x), dim=1)

    theirs = TNet().double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    opt, t_opt = optim.Adadelta(ours.parameters(), lr=1.0), torch.optim.Adadelta(theirs.parameters(), lr=1.0)
    sched, t_sched = StepLR(opt, step_size=1, gamma=0.7), torch.optim.lr_scheduler.StepLR(t_opt, 1, gamma=0.7)
    for data, target in loader:
        data = data.double()
        opt.zero_grad()
        loss = F.nll_loss(ours(data), target)
        loss.backward()
        opt.step()
        t_opt.zero_grad()
        t_loss = tF.nll_loss(theirs(torch.from_numpy(data.numpy().copy())), torch.from_numpy(target.numpy()))
        t_loss.backward()
        t_opt.step()
        sched.step()
        t_sched.step()
        np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-9)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
    assert opt.param_groups[0]["lr"] == pytest.approx(t_opt.param_groups[0]["lr"])
