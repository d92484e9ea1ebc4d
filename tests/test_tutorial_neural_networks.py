"""PyTorch's 60-minute blitz, "Neural networks": define LeNet, compute a loss, backprop, update the
weights by hand and with ``optim``, with only the imports changed; checked against PyTorch."""
import numpy as np
import pytest

import cnnlab as torch
import cnnlab.nn as nn
import cnnlab.nn.functional as F
import cnnlab.optim as optim


@pytest.fixture
def pt(torch):  # noqa: F811  (the real PyTorch; this module's ``torch`` is cnnlab)
    return torch


class Net(nn.Module):

    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, input):
        c1 = F.relu(self.conv1(input))
        s2 = F.max_pool2d(c1, (2, 2))
        c3 = F.relu(self.conv2(s2))
        s4 = F.max_pool2d(c3, 2)
        s4 = torch.flatten(s4, 1)
        f5 = F.relu(self.fc1(s4))
        f6 = F.relu(self.fc2(f5))
        return self.fc3(f6)


def _torch_twin(pt, net):
    """The same network in PyTorch, with the same weights."""
    tnn, tF = pt.nn, pt.nn.functional

    class TNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, 6, 5), tnn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = tnn.Linear(400, 120), tnn.Linear(120, 84), tnn.Linear(84, 10)

        def forward(self, x):
            x = tF.max_pool2d(tF.relu(self.conv1(x)), 2)
            x = pt.flatten(tF.max_pool2d(tF.relu(self.conv2(x)), 2), 1)
            return self.fc3(tF.relu(self.fc2(tF.relu(self.fc1(x)))))

    twin = TNet().double()
    twin.load_state_dict({k: pt.from_numpy(np.array(v, dtype=np.float64)) for k, v in net.state_dict().items()})
    return twin


def test_the_blitz_network_step_by_step(pt):
    torch.manual_seed(0)
    net = Net()
    assert "Linear(in_features=400, out_features=120, bias=True)" in repr(net)
    params = list(net.parameters())
    assert len(params) == 10 and params[0].size() == torch.Size([6, 1, 5, 5])
    net = net.double()
    twin = _torch_twin(pt, net)
    input = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    out = net(input)
    t_input = pt.from_numpy(input.numpy().copy())
    np.testing.assert_allclose(out.detach().numpy(), twin(t_input).detach().numpy(), rtol=1e-10, atol=1e-12)

    net.zero_grad()
    out.backward(torch.randn(1, 10, dtype=torch.float64))
    assert net.conv1.bias.grad.shape == (6,)

    output = net(input)
    target = torch.randn(10, dtype=torch.float64)
    target = target.view(1, -1)
    criterion = nn.MSELoss()
    loss = criterion(output, target)
    assert loss.grad_fn.name() == "MseLossBackward0"
    assert loss.grad_fn.next_functions[0][0] is not None
    assert loss.grad_fn.next_functions[0][0].next_functions[0][0] is not None

    net.zero_grad()
    assert net.conv1.bias.grad is None
    loss.backward()
    t_loss = pt.nn.MSELoss()(twin(t_input), pt.from_numpy(target.numpy().copy()))
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-10)
    np.testing.assert_allclose(net.conv1.bias.grad.numpy(), twin.conv1.bias.grad.numpy(), rtol=1e-8, atol=1e-12)

    learning_rate = 0.01
    for f in net.parameters():  # the blitz's update by hand, word for word
        f.data.sub_(f.grad.data * learning_rate)
    for f in twin.parameters():
        f.data.sub_(f.grad.data * learning_rate)
    for (name, p), tp in zip(net.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=name)

    optimizer = optim.SGD(net.parameters(), lr=0.01)
    t_optimizer = pt.optim.SGD(twin.parameters(), lr=0.01)
    for opt, model, x, tgt in ((optimizer, net, input, target),
                               (t_optimizer, twin, t_input, pt.from_numpy(target.numpy().copy()))):
        opt.zero_grad()
        output = model(x)
        loss = (criterion if model is net else pt.nn.MSELoss())(output, tgt)
        loss.backward()
        opt.step()
    for (name, p), tp in zip(net.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_blitz_hand_update_through_data():
    """The blitz's own update: ``f.data.sub_(f.grad.data * learning_rate)`` changes the parameter in place."""
    torch.manual_seed(1)
    net = Net()
    loss = net(torch.randn(2, 1, 32, 32)).pow(2).mean()
    loss.backward()
    before = [p.numpy().copy() for p in net.parameters()]
    objects = [id(p) for p in net.parameters()]
    learning_rate = 0.01
    for f in net.parameters():
        f.data.sub_(f.grad.data * learning_rate)
    assert [id(p) for p in net.parameters()] == objects
    for b, f in zip(before, net.parameters()):
        assert f.requires_grad and f.data.requires_grad is False
        np.testing.assert_allclose(f.numpy(), b - 0.01 * f.grad.numpy(), rtol=1e-6)
