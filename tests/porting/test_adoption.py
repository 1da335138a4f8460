"""``polyoptim.paddle.adopt`` and ``polyoptim.mindspore.adopt``: the names match what the real
frameworks give the same layers (tests/golden/porting/*/names.json, written by the tools/
scripts), the attributes behave as Paddle's and MindSpore's do, and the module keeps working as
a torch module (values, ``state_dict``, ``torch.save``/``load``, ``deepcopy``, DDP, FSDP2,
``torch.compile``)."""

from __future__ import annotations

import copy
import io
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from polyoptim import mindspore as ms
from polyoptim import paddle
from polyoptim.paddle.adopt import paddle_layout

GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "golden", "porting")


class PaddleZoo(torch.nn.Module):
    """tools/porting_golden_paddle.py's Zoo in torch."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.emb = nn.Embedding(10, 4)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), nn.Linear(4, 4), nn.BatchNorm1d(4)
        )
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 2, bias=False)])
        self.gn = nn.GroupNorm(2, 4)
        self.deconv = nn.ConvTranspose2d(4, 2, 3)
        self.prelu = nn.PReLU()


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3)
        self.bn1 = torch.nn.BatchNorm2d(4)


class MindSporeZoo(torch.nn.Module):
    """tools/porting_golden_mindspore.py's Zoo in torch."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.layer1 = nn.Sequential(Block(), Block())
        self.emb = nn.Embedding(10, 4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm((4,))
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 2, bias=False)])
        self.bn = nn.BatchNorm1d(4)


def _golden(framework: str):
    with open(os.path.join(GOLDEN, framework, "names.json"), encoding="utf-8") as f:
        return json.load(f)


# -- names ----------------------------------------------------------------------------------------
def test_paddle_names_match_paddle() -> None:
    with paddle.unique_name_guard():
        zoo = paddle.adopt(PaddleZoo())
    params = dict(zoo.named_parameters())
    torch_key = {"_mean": "running_mean", "_variance": "running_var", "_weight": "weight"}
    for structured, name, shape in _golden("paddle"):
        head, _, leaf = structured.rpartition(".")
        key = f"{head}.{torch_key.get(leaf, leaf)}" if head else torch_key.get(leaf, leaf)
        if key in params:  # BatchNorm statistics are buffers in torch: numbered, unnamed
            p = params[key]
            assert p.name == name, key
            assert list(paddle_layout(p, p.detach(), to_paddle=True).shape) == shape, key
    assert len(params) == sum(
        1 for s, _, _ in _golden("paddle") if "_mean" not in s and "_var" not in s
    )


def test_paddle_numbering_continues_like_paddle() -> None:
    """Paddle's counters are per process: a second model continues them; the guard restarts."""
    with paddle.unique_name_guard():
        a = paddle.adopt(torch.nn.Linear(2, 2))
        b = paddle.adopt(torch.nn.Linear(2, 2))
        paddle.adopt(a)  # adopting again renames nothing
    assert (a.weight.name, b.weight.name) == ("linear_0.w_0", "linear_1.w_0")
    with paddle.unique_name_guard():
        assert paddle.adopt(torch.nn.Linear(2, 2)).bias.name == "linear_0.b_0"


def test_mindspore_names_match_mindspore() -> None:
    golden = _golden("mindspore")
    zoo = ms.adopt(MindSporeZoo())
    assert [[n, p.name, p.requires_grad] for n, p in zoo.parameters_and_names()] == golden[
        "parameters_and_names"
    ]
    assert [p.name for p in zoo.trainable_params()] == golden["trainable"]
    assert [n for n, _ in zoo.layer1.parameters_and_names()] == golden["layer1_walk"]
    assert [n for n, _ in zoo.layer1.parameters_and_names(name_prefix="x")][0] == (
        "x." + golden["layer1_walk"][0]
    )
    assert list(zoo.parameters_dict()) == [n for n, _, _ in golden["parameters_and_names"]]
    assert len(list(zoo.get_parameters())) == len(golden["parameters_and_names"])
    assert [p.name for p in zoo.untrainable_params()] == [
        n for n, _, grad in golden["parameters_and_names"] if not grad
    ]


# -- attributes -----------------------------------------------------------------------------------
def test_paddle_attributes() -> None:
    with paddle.unique_name_guard():
        lin = paddle.adopt(torch.nn.Linear(3, 2))
    w = lin.weight
    assert (w.trainable, w.stop_gradient, w.need_clip, w.regularizer) == (True, False, True, None)
    assert w.optimize_attr == {"learning_rate": 1.0}
    w.stop_gradient = True
    assert not w.requires_grad and not w.trainable
    w.trainable = True
    assert w.requires_grad
    w.optimize_attr["learning_rate"] = 0.5  # Paddle code scales a tensor's lr this way
    w.regularizer = paddle.L1Decay(0.1)
    w.need_clip = False
    attr = paddle.param_attr(w)
    assert (attr.learning_rate, attr.need_clip, type(attr.regularizer)) == (
        0.5,
        False,
        paddle.L1Decay,
    )
    w.name = "my_w"
    opt = paddle.SGD(learning_rate=0.1, parameters=lin.parameters())
    assert opt.param_name(w) == "my_w"
    assert isinstance(lin.parameters(), list) and next(lin.parameters()) is w


def test_paddle_decay_filter_sees_unique_names() -> None:
    """PaddleNLP's filter, with and without adoption: without, ``p.name`` is None for every
    tensor and nothing is decayed -- the silent failure adoption removes."""
    with paddle.unique_name_guard():
        model = paddle.adopt(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2)))
    decay = [
        p.name for n, p in model.named_parameters() if not any(k in n for k in ["bias", "norm"])
    ]
    assert decay == ["linear_0.w_0", "layer_norm_0.w_0"]
    plain = torch.nn.Linear(2, 2)
    assert [p.name for p in plain.parameters()] == [None, None]


def test_mindspore_attributes() -> None:
    net = ms.adopt(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    gamma = net[1].weight
    assert gamma.name == "1.gamma" and net[1].running_mean.name == "1.moving_mean"
    gamma.set_data(torch.full((2,), 3.0))
    assert torch.equal(gamma.detach(), torch.full((2,), 3.0))
    with pytest.raises(ValueError, match="shape"):
        gamma.set_data(torch.ones(3))
    gamma.requires_grad = False
    assert [p.name for p in net.trainable_params()] == ["0.weight", "0.bias", "1.beta"]
    assert net.set_train(False) is net and not net.training
    assert [n for n, _ in net.cells_and_names()] == ["", "0", "1"]


def test_adopt_refuses_non_modules() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        paddle.adopt(torch.ones(2))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ms.adopt([torch.nn.Linear(2, 2)])


# -- torch keeps working ----------------------------------------------------------------------
def _pair(adopt):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    ref = copy.deepcopy(net)
    return adopt(net), ref


ADOPTERS = {"paddle": paddle.adopt, "mindspore": ms.adopt}


@pytest.mark.parametrize("which", sorted(ADOPTERS))
def test_torch_behaviour_unchanged(which: str) -> None:
    net, ref = _pair(ADOPTERS[which])
    x = torch.randn(5, 4)
    assert torch.equal(net(x), ref(x))  # train mode: BatchNorm statistics update alike
    assert list(net.state_dict()) == list(ref.state_dict())
    for (ka, a), (kb, b) in zip(net.state_dict().items(), ref.state_dict().items()):
        assert ka == kb and type(a) is torch.Tensor and torch.equal(a, b)
    net(x).sum().backward()
    ref(x).sum().backward()
    for p, q in zip(net.parameters(), ref.parameters()):
        assert isinstance(p, torch.nn.Parameter) and torch.equal(p.grad, q.grad)
    assert repr(net) == repr(ref)
    # state_dict round trip through torch.save with weights_only (plain tensors only)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    ref.load_state_dict(torch.load(buf, weights_only=True))
    # whole-module pickling and deepcopy keep the adoption
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    for again in (torch.load(buf, weights_only=False), copy.deepcopy(net)):
        names = [p.name for p in again.parameters()]
        assert names == [p.name for p in net.parameters()] and None not in names
        assert torch.equal(again(x), net(x))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank: int, kind: str, which: str, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with paddle.unique_name_guard():
        ADOPTERS[which](net)
    if kind == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(net)
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (2,))
        fully_shard(net[0], mesh=mesh)
        fully_shard(net, mesh=mesh)
        ADOPTERS[which](net)  # FSDP2 replaced the parameters: adopt them (names are kept)
        model = net
    names = [p.name for p in net.parameters()]
    if which == "paddle":
        opt = paddle.AdamW(
            learning_rate=0.01,
            parameters=net.parameters(),
            apply_decay_param_fun=lambda n: n.endswith("w_0"),
        )
    else:
        opt = ms.AdamWeightDecay(net.trainable_params(), learning_rate=0.01, weight_decay=0.01)
    torch.manual_seed(rank)
    x = torch.randn(6, 4)
    for _ in range(3):
        model(x).pow(2).mean().backward()
        opt.step()
        net.zero_grad()
    w = net[0].weight
    w = w.full_tensor() if hasattr(w, "full_tensor") else w
    if rank == 0:
        torch.save({"w": w.detach().clone(), "names": names}, out)
    dist.destroy_process_group()


def _reference(which: str) -> torch.Tensor:
    """The same three steps in one process on the batch of both ranks (mean of the two
    ranks' gradients, as DDP and FSDP average)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with paddle.unique_name_guard():
        ADOPTERS[which](net)
    if which == "paddle":
        opt = paddle.AdamW(
            learning_rate=0.01,
            parameters=net.parameters(),
            apply_decay_param_fun=lambda n: n.endswith("w_0"),
        )
    else:
        opt = ms.AdamWeightDecay(net.trainable_params(), learning_rate=0.01, weight_decay=0.01)
    xs = []
    for rank in range(2):
        torch.manual_seed(rank)
        xs.append(torch.randn(6, 4))
    for _ in range(3):
        sum(net(x).pow(2).mean() for x in xs).div(2).backward()
        opt.step()
        net.zero_grad()
    return net[0].weight.detach()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
@pytest.mark.parametrize("which", sorted(ADOPTERS))
def test_distributed(kind: str, which: str, tmp_path) -> None:
    """DDP and FSDP2 (gloo, 2 processes, loopback) train an adopted model with the dialect's
    optimizer to the single-process result, the names intact."""
    out = str(tmp_path / "w.pt")
    mp.spawn(_distributed_worker, args=(kind, which, _free_port(), out), nprocs=2)
    got = torch.load(out)
    expected_names = (
        ["linear_0.w_0", "linear_0.b_0", "linear_1.w_0", "linear_1.b_0"]
        if which == "paddle"
        else ["0.weight", "0.bias", "2.weight", "2.bias"]
    )
    assert got["names"] == expected_names
    torch.testing.assert_close(got["w"], _reference(which), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("which", sorted(ADOPTERS))
def test_torch_compile(which: str) -> None:
    net, ref = _pair(ADOPTERS[which])
    x = torch.randn(5, 4)
    compiled = torch.compile(net, fullgraph=True)
    compiled_ref = torch.compile(ref, fullgraph=True)
    torch.testing.assert_close(compiled(x), compiled_ref(x))
    compiled(x).sum().backward()
    compiled_ref(x).sum().backward()
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
