"""The grader ↔ sandbox protocol (visgen.course.rpc) on its own, both ends in this process (the
sandbox end in a thread): values arrive intact, gradients through remote code equal the
in-process ones (`backward` and `autograd.grad`, callbacks into grader modules included),
generators and in-place updates stay shared, and the grader's end refuses every malformed or
forbidden message with a ProtocolError or an exception for the caller, never a crash."""

import contextlib
import json
import socket
import struct
import threading

import numpy as np
import pytest
import torch
from torch import nn

from visgen.course.rpc import Channel, ProtocolError, RemoteError, RemoteModule

F64 = torch.float64


class Pair:
    """A grader channel and a sandbox channel serving the functions in ``namespace``."""

    def __init__(self, namespace):
        grader_sock, sandbox_sock = socket.socketpair()
        self.namespace = namespace
        self.sandbox = Channel(sandbox_sock, side="sandbox", resolve=namespace.__getitem__)
        self.grader = Channel(grader_sock, side="grader")
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        with contextlib.suppress(BaseException):  # a broken stream ends it, like the real one
            self.sandbox.serve()

    def __call__(self, name, *args, **kwargs):
        return self.grader.call(f"sub:{name}", "__call__", args, kwargs)


def test_values_cross_intact():
    pair = Pair({"echo": lambda *a, **k: (a, k)})
    values = (
        None,
        True,
        -(2**62),
        1.5,
        float("nan"),
        float("-inf"),
        "ε̂ and x̂0",
        b"\x00\xff",
        [1, (2, 3)],
        {"a": 1, 2: [3], None: {"b": 4.0}},
        torch.arange(6, dtype=F64).reshape(2, 3).t(),  # not contiguous
        torch.tensor(3.25),  # 0-d
        torch.zeros(0, 4),
        torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        torch.tensor([True, False]),
        torch.arange(5, dtype=torch.int8),
        np.arange(4, dtype=np.float32).reshape(2, 2),
        torch.Size([2, 3]),
        torch.float16,
    )
    (args, kwargs) = pair("echo", *values, key=values[10])
    for sent, got in zip(values, args):
        if isinstance(sent, torch.Tensor):
            assert torch.equal(got, sent) and got.dtype == sent.dtype
        elif isinstance(sent, np.ndarray):
            assert np.array_equal(got, sent) and got.dtype == sent.dtype
        elif isinstance(sent, float) and sent != sent:
            assert got != got
        else:
            assert got == sent and type(got) is type(sent)
    assert torch.equal(kwargs["key"], values[10])
    x = torch.ones(3)
    same = pair("echo", x, x)[0]
    assert same[0] is same[1]  # one object sent once: still one object


def test_gradients_through_remote_code_equal_in_process():
    def loss(model, x, w):
        return ((model(x) - 1) ** 2 * w).sum() + x.pow(3).sum()

    pair = Pair({"loss": loss})
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    ref_model = nn.Linear(3, 2).double()
    ref_model.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    w = torch.rand(4, 2, dtype=F64, requires_grad=True)
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    remote = pair("loss", model, x, w)  # the model stays here, called back from the sandbox
    local = loss(ref_model, x_ref, w_ref)
    assert torch.allclose(remote, local)
    remote.backward()
    local.backward()
    for got, expected in zip((x, w, *model.parameters()), (x_ref, w_ref, *ref_model.parameters())):
        assert torch.allclose(got.grad, expected.grad)
    # torch.autograd.grad: gradients come back as values, nothing accumulates
    x2 = torch.randn(5, 3, dtype=F64, requires_grad=True)
    pair2 = Pair({"f": lambda a: (a.sin() * a).sum(1)})
    (g,) = torch.autograd.grad(pair2("f", x2).sum(), x2)
    assert torch.allclose(g, x2.cos() * x2 + x2.sin()) and x2.grad is None


def test_generators_and_in_place_updates_are_shared():
    def draw(n, generator):
        return torch.randn(n, generator=generator), torch.rand(2)  # the second: global generator

    def scale_(t):
        t.mul_(2)

    pair = Pair({"draw": draw, "scale_": scale_})
    g, g_ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.manual_seed(5)
    got, got_global = pair("draw", 4, g)
    torch.manual_seed(5)
    ref, ref_global = torch.randn(4, generator=g_ref), torch.rand(2)
    assert torch.equal(got, ref) and torch.equal(got_global, ref_global)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=g_ref))
    t = torch.ones(3)
    pair("scale_", t)
    assert torch.equal(t, torch.full((3,), 2.0))


def test_sandbox_hooks_never_run_during_the_graders_own_work():
    calls = []

    def hook_it(net):
        net.register_forward_hook(lambda module, inputs, output: calls.append(1) or output * 0)
        return net(torch.ones(1, 2))

    pair = Pair({"hook_it": hook_it})
    net = nn.Linear(2, 2)
    out = pair("hook_it", net)
    assert calls == [1] and torch.equal(out, torch.zeros(1, 2))  # inside the call: it runs
    assert not torch.equal(net(torch.ones(1, 2)), torch.zeros(1, 2))  # the grader's own call
    assert calls == [1]
    pair.grader.close_test()
    assert not net._forward_hooks  # and the grader takes it off at the end of the test


def test_grader_objects_offer_only_listed_methods():
    def probe(net, name):
        assert isinstance(net, RemoteModule)
        return net._vg_invoke(name)

    pair = Pair({"probe": probe})
    net = nn.Linear(2, 2)
    for forbidden in ("state_dict", "__class__", "__reduce__", "parameters", "cuda"):
        with pytest.raises(RemoteError, match="not available to graded code"):
            pair("probe", net, forbidden)
    assert pair("probe", net, "eval") is net  # a listed method, and the grader's own object


def _raw(sock, header: dict, blob: bytes = b"", *, magic=b"VGR1") -> None:
    header.setdefault("blobs", [len(blob)] if blob else [])
    raw = json.dumps(header).encode()
    padded = blob + bytes(-len(blob) % 64)
    sock.sendall(struct.pack("<4sIQ", magic, len(raw), len(padded)) + raw + padded)


@pytest.mark.parametrize(
    "frame",
    [
        "garbage",
        "not json",
        "reply out of turn",
        "unknown kind",
        "bad back-reference",
        "tensor bytes short",
        "unknown dtype",
        "call a grader object it never got",
    ],
)
def test_grader_refuses_malformed_messages(frame):
    grader_sock, fake = socket.socketpair()
    grader = Channel(grader_sock, side="grader")

    def reply_with(msg):
        request = fake.recv(1 << 20)  # the grader's call, ignored
        assert request.startswith(b"VGR1")
        if msg == "garbage":
            fake.sendall(b"\x00" * 64)
        elif msg == "not json":
            fake.sendall(struct.pack("<4sIQ", b"VGR1", 5, 0) + b"{oops")
        elif msg == "reply out of turn":
            _raw(fake, {"id": 1, "re": 999, "kind": "ok", "value": None})
        elif msg == "unknown kind":
            _raw(fake, {"id": 1, "kind": "exec", "value": None})
        elif msg == "bad back-reference":
            _raw(fake, {"id": 1, "re": 1, "kind": "ok", "value": {"R": ["h", "xh999"]}})
        elif msg == "tensor bytes short":
            node = {"T": "float64", "s": [4], "b": 0, "i": 0}
            _raw(fake, {"id": 1, "re": 1, "kind": "ok", "value": node}, b"\x00" * 8)
        elif msg == "unknown dtype":
            node = {"T": "object", "s": [1], "b": 0, "i": 0}
            _raw(fake, {"id": 1, "re": 1, "kind": "ok", "value": node}, b"\x00" * 8)
        elif msg == "call a grader object it never got":
            _raw(
                fake,
                {
                    "id": 1,
                    "kind": "call",
                    "call": "yc1",
                    "target": "xh1",
                    "method": "__call__",
                    "args": {"l": []},
                    "kwargs": {"d": []},
                    "grad": True,
                },
            )

    thread = threading.Thread(target=reply_with, args=(frame,))
    thread.start()
    with pytest.raises(ProtocolError):
        grader.call("sub:f", "__call__", [torch.ones(2)], {})
    thread.join()
    assert grader.broken
