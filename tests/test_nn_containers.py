"""ModuleList, ModuleDict and the Module API a PyTorch user expects: hooks, apply,
requires_grad_, to/cpu, zero_grad, get_submodule, add_module and friends."""
import numpy as np
import pytest

from cnnlab import Tensor, nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn(self.conv(x))


class Net(nn.Module):
    """A user's net in PyTorch style: a ModuleList of blocks and a ModuleDict of heads."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.blocks = nn.ModuleList([Block(4) for _ in range(2)])
        self.heads = nn.ModuleDict({"digit": nn.Linear(4, 10), "parity": nn.Linear(4, 2)})
        self.plain = [nn.Linear(4, 4)]          # a plain list is not registered, as in PyTorch

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = x.mean(axis=(2, 3))
        return self.heads["digit"](x)


def torch_net(torch):
    """The same net written against torch.nn."""
    tnn = torch.nn

    class TorchBlock(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = tnn.Conv2d(c, c, 3, padding=1)
            self.bn = tnn.BatchNorm2d(c)

        def forward(self, x):
            return x + self.bn(self.conv(x))

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tnn.Conv2d(1, 4, 3, padding=1)
            self.blocks = tnn.ModuleList([TorchBlock(4) for _ in range(2)])
            self.heads = tnn.ModuleDict({"digit": tnn.Linear(4, 10), "parity": tnn.Linear(4, 2)})
            self.plain = [tnn.Linear(4, 4)]

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            return self.heads["digit"](x.mean(dim=(2, 3)))

    return TorchNet()


# --- ModuleList -------------------------------------------------------------------------------------------
def test_module_list_registers_children_named_by_index():
    blocks = nn.ModuleList([nn.ReLU(), nn.Linear(2, 3)])
    blocks.append(nn.Linear(3, 4)).extend([nn.Tanh()])
    blocks.insert(1, nn.Sigmoid())
    assert [type(m).__name__ for m in blocks] == ["ReLU", "Sigmoid", "Linear", "Linear", "Tanh"]
    assert [n for n, _ in blocks.named_children()] == ["0", "1", "2", "3", "4"]
    assert list(blocks.state_dict()) == ["2.weight", "2.bias", "3.weight", "3.bias"]
    assert len(blocks) == 5 and isinstance(blocks[-1], nn.Tanh) and blocks[2] is blocks[-3]
    part = blocks[1:3]
    assert isinstance(part, nn.ModuleList) and [type(m).__name__ for m in part] == ["Sigmoid", "Linear"]
    del blocks[0]
    assert [n for n, _ in blocks.named_children()] == ["0", "1", "2", "3"] and isinstance(blocks[0], nn.Sigmoid)
    assert isinstance(blocks.pop(), nn.Tanh) and len(blocks) == 3
    blocks[0] = nn.GELU()
    assert isinstance(blocks[0], nn.GELU)
    blocks += [nn.ReLU()]
    assert len(blocks) == 4 and len(blocks + nn.ModuleList([nn.ReLU()])) == 5
    with pytest.raises(IndexError, match=r"index 7 is out of range \(ModuleList of length 4\)"):
        blocks[7]
    with pytest.raises(TypeError, match=r"ModuleList takes Modules, got int"):
        blocks.append(3)
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        blocks(np.zeros(1))


def test_module_dict_behaves_like_an_ordered_dict_of_layers():
    heads = nn.ModuleDict({"a": nn.Linear(2, 3)})
    heads.update([("b", nn.ReLU())])
    heads["c"] = nn.Linear(3, 1)
    assert list(heads) == list(heads.keys()) == ["a", "b", "c"]
    assert "b" in heads and "z" not in heads and len(heads) == 3
    assert [type(v).__name__ for v in heads.values()] == ["Linear", "ReLU", "Linear"]
    assert [k for k, _ in heads.items()] == ["a", "b", "c"]
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert isinstance(heads.pop("b"), nn.ReLU) and list(heads) == ["a", "c"]
    del heads["a"]
    assert list(heads) == ["c"] and not hasattr(heads, "a")
    with pytest.raises(KeyError, match=r"'x' is not in this ModuleDict; keys: \['c'\]"):
        heads["x"]
    with pytest.raises(KeyError, match=r'contain "\.", got: a\.b'):
        heads["a.b"] = nn.ReLU()
    with pytest.raises(TypeError, match=r"ModuleDict update sequence element #0 should be a \(key, module\) pair"):
        heads.update([nn.ReLU()])
    heads.clear()
    assert len(heads) == 0


def test_net_with_containers_has_torchs_state_dict_keys_and_a_plain_list_is_not_registered(torch):
    ours, theirs = Net(), torch_net(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert not any(k.startswith("plain") for k in ours.state_dict())
    out = ours(np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32))
    out.sum().backward()
    assert all(p.grad is not None for n, p in ours.named_parameters() if not n.startswith("heads.parity"))


# --- Module API ------------------------------------------------------------------------------------------
def test_forward_hook_sees_input_and_output_can_replace_it_and_remove():
    layer = nn.Linear(3, 2)
    x = Tensor(np.ones((1, 3), np.float32))
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append((m, args, out)))
    out = layer(x)
    assert seen[0][0] is layer and seen[0][1][0] is x and seen[0][2] is out
    replace = layer.register_forward_hook(lambda m, args, out: out * 0)
    assert (layer(x).numpy() == 0).all() and len(seen) == 2
    replace.remove()
    handle.remove()
    handle.remove()                                   # removing twice is harmless
    np.testing.assert_array_equal(layer(x).numpy(), out.numpy())
    assert len(seen) == 2


def test_forward_pre_hook_can_replace_the_input_and_hooks_work_inside_sequential():
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    with model[1].register_forward_pre_hook(lambda m, args: (args[0] - 10,)):
        assert (model(np.ones((2, 2), np.float32)).numpy() == 0).all()
    assert (model(np.ones((2, 2), np.float32)).numpy() == 1).all()       # removed on leaving the with block
    names = []
    handles = [m.register_forward_hook(lambda m, a, o, n=n: names.append(n)) for n, m in model.named_children()]
    model(np.ones((1, 2), np.float32))
    assert names == ["0", "1"]
    for h in handles:
        h.remove()


def test_forward_hook_collects_feature_maps_as_pytorch_users_do(torch):
    ours, theirs = Net(), torch_net(torch)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 1, 5, 5)).astype(np.float32)
    maps = {}
    ours.stem.register_forward_hook(lambda m, a, o: maps.__setitem__("ours", o.numpy()))
    theirs.stem.register_forward_hook(lambda m, a, o: maps.__setitem__("theirs", o.detach().numpy()))
    ours(x)
    theirs(torch.tensor(x))
    np.testing.assert_allclose(maps["ours"], maps["theirs"], atol=1e-5)


def test_apply_visits_children_first_then_self():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Tanh()))
    order = []
    assert model.apply(lambda m: order.append(type(m).__name__)) is model
    assert order == ["Linear", "ReLU", "Tanh", "Sequential", "Sequential"]


def test_requires_grad_freezes_parameters():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    assert model[0].requires_grad_(False) is model[0]
    out = model(np.ones((1, 3), np.float32))
    out.sum().backward()
    assert model[0].weight.grad is None and model[1].weight.grad is not None
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_zero_grad_sets_to_none_by_default_or_zeros():
    layer = nn.Linear(3, 2)
    layer(np.ones((1, 3), np.float32)).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad and (grad == 0).all()
    assert layer.weight.grad.dtype == np.float32
    layer.zero_grad()
    assert layer.weight.grad is None


def test_to_cpu_and_dtypes_as_pytorch(torch):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    weight = model[0].weight
    assert model.to("cpu") is model and model.to(device="cpu") is model and model.cpu() is model
    assert model.to(torch.device("cpu")) is model
    assert model.to(torch.float64) is model and weight.dtype == np.float64 and model[0].weight is weight
    assert model[1].running_mean.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64
    model.to("cpu", np.float32)
    assert weight.dtype == np.float32
    model.to(dtype="float64")
    assert weight.dtype == np.float64
    model.type(np.float32)
    assert weight.dtype == np.float32
    with pytest.raises(ValueError, match=r"cnnlab runs on the CPU only: device must be 'cpu', got 'cuda'"):
        model.to("cuda")
    with pytest.raises(ValueError, match=r"got 'cuda:0'"):
        model.to(device=torch.device("cuda:0"))
    with pytest.raises(ValueError, match=r"cnnlab runs on the CPU only"):
        model.cuda()
    with pytest.raises(TypeError, match=r"nn.Module.to only accepts floating point dtypes .* got desired "
                                        r"dtype=torch.int64"):
        model.to(torch.int64)
    with pytest.raises(TypeError, match=r"only accepts float32 or float64, got desired dtype=float16"):
        model.to(np.float16)
    assert weight.dtype == np.float32


def test_named_children_get_submodule_and_get_parameter():
    model = Net()
    assert [n for n, _ in model.named_children()] == ["stem", "blocks", "heads"]
    assert model.get_submodule("blocks.1.conv") is model.blocks[1].conv
    assert model.get_submodule("") is model
    assert model.get_parameter("heads.digit.bias") is model.heads["digit"].bias
    with pytest.raises(AttributeError, match=r"ModuleList has no attribute `5`"):
        model.get_submodule("blocks.5")
    with pytest.raises(AttributeError, match=r"`training` is not an nn.Module"):
        model.get_submodule("stem.training")


def test_add_module_register_parameter_and_buffer():
    m = nn.Module()
    m.add_module("fc", nn.Linear(2, 2))
    m.register_module("act", nn.ReLU())
    m.register_parameter("scale", nn.Parameter(np.ones(2, np.float32)))
    m.register_buffer("count", np.zeros(()), persistent=True)
    m.register_buffer("cache", np.zeros(3), persistent=False)
    assert [n for n, _ in m.named_children()] == ["fc", "act"]
    assert list(m.state_dict()) == ["scale", "count", "fc.weight", "fc.bias"]
    assert [n for n, _ in m.named_buffers()] == ["count", "cache"] and len(list(m.buffers())) == 2
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert len(list(m.parameters(recurse=False))) == 1 and len(list(m.parameters())) == 3
    m.count = np.ones(())                                # assigning an array keeps it a buffer
    assert m.state_dict()["count"] == 1
    with pytest.raises(TypeError, match=r"int is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(KeyError, match=r"attribute 'scale' already exists"):
        m.add_module("scale", nn.ReLU())
    with pytest.raises(KeyError, match=r"module name can.{1,3}t be empty string"):
        m.add_module("", nn.ReLU())
    with pytest.raises(TypeError, match=r"module name should be a string, got int"):
        m.add_module(1, nn.ReLU())
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' object to parameter 'w' "
                                        r"\(cnnlab.nn.Parameter or None required\)"):
        m.register_parameter("w", Tensor(np.ones(2)))
    del m.fc
    assert "fc.weight" not in m.state_dict()


def test_assigning_a_plain_tensor_over_a_parameter_is_an_error_as_in_pytorch():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'weight' "
                                        r"\(cnnlab.nn.Parameter or None expected\)"):
        layer.weight = layer.weight * 2
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_shared_layer_is_one_parameter_set_but_both_state_dict_keys():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(model.named_modules(remove_duplicate=False))) == 4


def test_train_mode_must_be_boolean_and_returns_self():
    model = Net()
    assert model.train(False) is model and not model.blocks[0].bn.training
    with pytest.raises(ValueError, match=r"training mode is expected to be boolean, got 'yes'"):
        model.train("yes")


def test_repr_matches_torch_for_nested_containers(torch):
    def build(lib):
        return lib.Sequential(lib.Conv2d(1, 2, 3), lib.ModuleList([lib.ReLU(), lib.Linear(2, 3)]),
                              lib.ModuleDict({"up": lib.Upsample(scale_factor=2)}))
    assert repr(build(nn)) == repr(build(torch.nn))


def test_sequential_insert_extend_delete_and_set():
    seq = nn.Sequential(nn.ReLU(), nn.Tanh())
    seq.extend([nn.Sigmoid()]).insert(0, nn.Identity())
    assert [type(m).__name__ for m in seq] == ["Identity", "ReLU", "Tanh", "Sigmoid"]
    del seq[1]
    seq[0] = nn.GELU()
    assert [type(m).__name__ for m in seq] == ["GELU", "Tanh", "Sigmoid"]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    assert isinstance(seq.pop(1), nn.Tanh) and len(seq) == 2
