"""The grader ↔ sandbox wire: plain data, tensors (autograd included) and handles, never pickle.

The hidden tests run in the trusted grader process; a submission's functions run in the
sandbox (:mod:`visgen.course.sandbox`). ``sub.f(*args)`` in a hidden test is a remote call:
the arguments are encoded here, the sandbox runs ``f`` and sends the result back. Both ends
speak the same protocol over one socket, strictly nested (a request is answered before the
request that caused it; while waiting, each side serves the other's requests, so callbacks
nest to any depth).

Frames: ``b"VGR1"``, header length, blob bytes, a JSON header, then the blobs (raw tensor
and array bytes, 64-byte aligned). Values in the header:

===========================  ================================================================
JSON ``null``/bool/int/str   themselves; a non-finite float is ``{"f": "nan"}``
``{"l"|"t": [...]}``          list, tuple; ``{"d": [[k, v], ...]}`` a dict (plain keys)
``{"T": dtype, "s", "i", "g"}``  a tensor's bytes (blob ``i``), ``g``: it requires grad
``{"N": dtype, "s", "i"}``    a numpy array; ``{"dt"}`` dtype, ``{"sz"}`` torch.Size
``{"G": id}``                 a ``torch.Generator`` (its state travels in the header)
``{"H": id, "k": kind}``      a handle: an object that stays where it is (callables, modules,
                             optimizers); calling the proxy calls it there
``{"V": tag, "a": [...]}``    a value object rebuilt on the other side from its fields
                             (Denoiser, FlowMap, schedules, Prediction, Posterior)
``{"R": [...]}``              "your own object": a tensor, handle or value object sent back
===========================  ================================================================

Autograd crosses the boundary both ways. A tensor that requires grad is, on the receiving
side, either a call's **argument** (a non-leaf whose backward pushes its gradient to the
sender, which runs ``backward`` into its own graph) or a call's **result** (the output of one
node whose inputs are the caller's arguments; its backward pulls the vector-Jacobian product
from the callee). So ``loss.backward()`` and ``torch.autograd.grad`` in a hidden test reach
the test's tensors and parameters through the student's code, and the student's
``loss.backward()`` reaches a network that stays in the grader. Graphs are retained until the
other side drops its copies (releases ride on the next message) or the test ends.

Generators (and torch's global generator) are shared: each side sends the state of every
generator that changed since the last message. A tensor argument modified in place by the
callee is copied back when the call returns.

The grader trusts nothing it receives: frames, JSON, dtypes, shapes and ids are checked, a
handle the sandbox holds can only be asked for the methods :data:`GRADER_METHODS` lists, and
a violation raises :class:`ProtocolError`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import struct
import sys
import weakref

__all__ = [
    "GRADER_METHODS",
    "Channel",
    "PeerLost",
    "ProtocolError",
    "RemoteError",
    "RemoteObject",
]

_MAGIC = b"VGR1"
_PREFIX = struct.Struct("<4sIQ")
_ALIGN = 64
MAX_HEADER = 16 << 20
MAX_BLOBS = 512 << 20
MAX_DEPTH = 100
MAX_MESSAGE_CHARS = 2000  # of an error message crossing the boundary

_TORCH_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
)
_BUILTIN_ERRORS = {
    e.__name__: e
    for e in (
        ArithmeticError,
        AttributeError,
        IndexError,
        KeyError,
        LookupError,
        MemoryError,
        NotImplementedError,
        OverflowError,
        RuntimeError,
        StopIteration,
        TypeError,
        ValueError,
        ZeroDivisionError,
    )
}


class ProtocolError(BaseException):
    """The other side sent something the protocol does not allow (or a frame was cut)."""


class PeerLost(BaseException):
    """The other side closed the connection (it exited or was killed)."""


class RemoteError(Exception):
    """The other side raised while serving our request: its type name, message and, for
    submission code, where (function, code cell, line)."""

    def __init__(self, type_name: str, message: str, where=None):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name, self.message, self.where = type_name, message, where


class _EncodeError(TypeError):
    pass


def _torch():
    return sys.modules.get("torch")


def _numpy():
    return sys.modules.get("numpy")


def _pad(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _clip(text: str, n: int = MAX_MESSAGE_CHARS) -> str:
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return text if len(text) <= n else text[: n - 1] + "…"


# --- frames -----------------------------------------------------------------------------------
class _Socket:
    def __init__(self, sock):
        self.sock = sock

    def send(self, header: dict, blobs: list) -> None:
        lengths = [len(b) for b in blobs]
        header["blobs"] = lengths
        raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
        total = sum(_pad(n) for n in lengths)
        parts = [_PREFIX.pack(_MAGIC, len(raw), total), raw]
        for blob, n in zip(blobs, lengths):
            parts.append(blob)
            if _pad(n) != n:
                parts.append(bytes(_pad(n) - n))
        if total < 1 << 16:
            self.sock.sendall(b"".join(bytes(p) for p in parts))
        else:
            for p in parts:
                self.sock.sendall(p)

    def _read(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise PeerLost("connection closed")
            got += k
        return buf

    def recv(self) -> tuple[dict, list]:
        magic, hlen, total = _PREFIX.unpack(self._read(_PREFIX.size))
        if magic != _MAGIC:
            raise ProtocolError("a frame does not start with the protocol's magic bytes")
        if hlen > MAX_HEADER or total > MAX_BLOBS:
            raise ProtocolError(f"a frame is too large ({hlen} + {total} bytes)")

        def no_constants(name):
            raise ValueError(f"{name} is not allowed")

        try:
            header = json.loads(bytes(self._read(hlen)), parse_constant=no_constants)
        except (ValueError, RecursionError) as err:
            raise ProtocolError(f"a frame header is not valid JSON: {_clip(err, 200)}") from None
        if not isinstance(header, dict):
            raise ProtocolError("a frame header is not a JSON object")
        lengths = header.get("blobs")
        if not (
            isinstance(lengths, list)
            and all(type(n) is int and n >= 0 for n in lengths)
            and sum(_pad(n) for n in lengths) == total
        ):
            raise ProtocolError("a frame's blob table does not match its length")
        data = self._read(total) if total else bytearray()
        view, blobs, offset = memoryview(data), [], 0
        for n in lengths:
            blobs.append(view[offset : offset + n])
            offset += _pad(n)
        return header, blobs


# --- autograd across the boundary ----------------------------------------------------------------
class _Token:
    """Shared by the copies of one call's tensors; its death releases the other side's originals."""

    __slots__ = ("__weakref__", "call", "channel", "inputs", "outputs")

    def __init__(self, channel, call):
        self.channel, self.call, self.inputs, self.outputs = channel, call, (), None


_FUNCTIONS = {}


def _functions():
    """The two autograd nodes (defined on first use: torch is imported lazily)."""
    if not _FUNCTIONS:
        torch = _torch()

        class ArgLink(torch.autograd.Function):
            """A received argument: its gradient goes back to the caller's original."""

            @staticmethod
            def forward(ctx, anchor, data, token, index):
                ctx.token, ctx.index = token, index
                return data.clone()  # an input returned as-is would be a view

            @staticmethod
            def backward(ctx, grad):
                ctx.token.channel._arg_gradient(ctx.token.call, ctx.index, grad)
                return None, None, None, None

        class Result(torch.autograd.Function):
            """A call's results: their gradient is pulled from the callee."""

            @staticmethod
            def forward(ctx, token, anchor, *inputs):
                ctx.token = token
                ctx.set_materialize_grads(False)
                return tuple(t.clone() for t in token.outputs)

            @staticmethod
            def backward(ctx, *grads):
                token = ctx.token
                return (None, None, *token.channel._pull(token, grads))

        _FUNCTIONS.update(arg=ArgLink, result=Result, anchor=torch.zeros((), requires_grad=True))
    return _FUNCTIONS


# --- value objects ---------------------------------------------------------------------------------
def _value_types():
    """tag → (class, fields(obj) -> dict, build(dict) -> obj) of objects rebuilt by value."""
    from visgen.fewstep.flowmap import FlowMap
    from visgen.nn.autoencoder import Posterior
    from visgen.param import PREDICTIONS, Denoiser, Prediction
    from visgen.schedules import SCHEDULES, Schedule

    def build_denoiser(f):
        den = Denoiser(f["model"], f["schedule"], f["prediction"])
        den.nfe = int(f["nfe"])
        return den

    def build_flowmap(f):
        fm = FlowMap(f["net"], f["schedule"])
        fm.nfe = int(f["nfe"])
        return fm

    def build_prediction(f):
        if f["kind"] not in PREDICTIONS or not isinstance(f["schedule"], Schedule):
            raise ValueError("a Prediction with an unknown kind or schedule")
        coefficients = f["coefficients"]
        if coefficients is not None:
            coefficients = tuple(float(c) for c in coefficients)
        return Prediction(f["raw"], f["kind"], f["x"], f["t"], f["schedule"], coefficients)

    types = {
        "denoiser": (
            Denoiser,
            lambda d: {
                "model": d.model,
                "schedule": d.schedule,
                "prediction": d.prediction,
                "nfe": d.nfe,
            },
            build_denoiser,
        ),
        "flowmap": (
            FlowMap,
            lambda m: {"net": m.net, "schedule": m.schedule, "nfe": m.nfe},
            build_flowmap,
        ),
        "prediction": (
            Prediction,
            lambda p: {
                "raw": p.raw,
                "kind": p.kind,
                "x": p.x,
                "t": p.t,
                "schedule": p.schedule,
                "coefficients": p.coefficients,
            },
            build_prediction,
        ),
        "posterior": (
            Posterior,
            lambda p: {"mean": p.mean, "logvar": p.logvar},
            lambda f: Posterior(f["mean"], f["logvar"]),
        ),
    }
    for cls in set(SCHEDULES.values()):
        allowed = set(vars(cls()))

        def build_schedule(f, cls=cls, allowed=allowed):
            torch = _torch()
            if set(f) != allowed or not all(
                isinstance(v, int | float | str) or (torch and isinstance(v, torch.Tensor))
                for v in f.values()
            ):
                raise ValueError(f"the fields of a {cls.__name__} schedule do not match")
            obj = cls.__new__(cls)
            obj.__dict__.update(f)
            return obj

        types[f"schedule:{cls.__name__}"] = (cls, lambda s: dict(vars(s)), build_schedule)
    return types


_VALUE_TYPES = {}


def _values():
    if not _VALUE_TYPES:
        _VALUE_TYPES.update(_value_types())
    return _VALUE_TYPES


def _value_tag(obj):
    """The tag of an object sent by value, or None. Exact classes only (no subclasses)."""
    mod = type(obj).__module__
    if not mod.startswith("visgen."):
        return None
    for tag, (cls, _, _) in _values().items():
        if type(obj) is cls:
            return tag
    return None


# --- handles ----------------------------------------------------------------------------------
class RemoteObject:
    """A proxy for an object that lives on the other side; calling it calls that object."""

    __slots__ = ("__weakref__", "_vg_channel", "_vg_hid")

    def __init__(self, channel, hid):
        object.__setattr__(self, "_vg_channel", channel)
        object.__setattr__(self, "_vg_hid", hid)

    def _vg_invoke(self, method, *args, **kwargs):
        return self._vg_channel.call(self._vg_hid, method, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self._vg_invoke("__call__", *args, **kwargs)

    def __repr__(self):
        return f"<{type(self).__name__} {self._vg_hid}: lives in the other process>"


class RemoteModule(RemoteObject):
    """A torch module that stays in the grader: call it, hook it, freeze it; its parameters are
    not sent (use ``requires_grad_``/``eval``/``train`` on the module)."""

    __slots__ = ()

    def forward(self, *args, **kwargs):
        return self._vg_invoke("forward", *args, **kwargs)

    def get_submodule(self, target):
        return self._vg_invoke("get_submodule", target)

    def register_forward_hook(self, hook, **kwargs):
        return self._vg_invoke("register_forward_hook", hook, **kwargs)

    def register_forward_pre_hook(self, hook, **kwargs):
        return self._vg_invoke("register_forward_pre_hook", hook, **kwargs)

    def requires_grad_(self, requires_grad=True):
        return self._vg_invoke("requires_grad_", requires_grad)

    def train(self, mode=True):
        return self._vg_invoke("train", mode)

    def eval(self):
        return self._vg_invoke("eval")

    def zero_grad(self, set_to_none=True):
        return self._vg_invoke("zero_grad", set_to_none)

    def modules(self):
        return iter(self._vg_invoke("modules"))

    def named_modules(self):
        return iter(self._vg_invoke("named_modules"))

    def children(self):
        return iter(self._vg_invoke("children"))

    def named_children(self):
        return iter(self._vg_invoke("named_children"))

    def encode(self, x):
        return self._vg_invoke("encode", x)

    def decode(self, z):
        return self._vg_invoke("decode", z)


class RemoteOptimizer(RemoteObject):
    __slots__ = ()

    def step(self, closure=None):
        if closure is not None:
            raise TypeError("optimizer.step(closure) is not supported here: call step() alone")
        return self._vg_invoke("step")

    def zero_grad(self, set_to_none=True):
        return self._vg_invoke("zero_grad", set_to_none)


class RemoteHookHandle(RemoteObject):
    __slots__ = ()

    def remove(self):
        return self._vg_invoke("remove")


_PROXIES = {
    "callable": RemoteObject,
    "module": RemoteModule,
    "optimizer": RemoteOptimizer,
    "hook": RemoteHookHandle,
}

# What the sandbox may ask of the grader's objects (by the object's own type, never by what
# the sandbox claims): anything else is refused.
GRADER_METHODS = {
    "module": {
        "__call__",
        "forward",
        "get_submodule",
        "register_forward_hook",
        "register_forward_pre_hook",
        "requires_grad_",
        "train",
        "eval",
        "zero_grad",
        "modules",
        "named_modules",
        "children",
        "named_children",
    },
    "autoencoder": {"encode", "decode"},
    "optimizer": {"step", "zero_grad"},
    "hook": {"remove"},
    "callable": {"__call__"},
}


def _grader_kind(obj) -> str | None:
    torch = _torch()
    if torch is not None:
        if isinstance(obj, torch.nn.Module):
            return "module"
        if isinstance(obj, torch.optim.Optimizer):
            return "optimizer"
        if isinstance(obj, torch.utils.hooks.RemovableHandle):
            return "hook"
    return "callable" if callable(obj) else None


class _GuardedHook:
    """A sandbox function registered as a hook on a grader module: it runs only while the
    sandbox is serving a call of the grader, never during the grader's own computations."""

    def __init__(self, channel, proxy):
        self.channel, self.proxy = channel, proxy

    def __call__(self, *args, **kwargs):
        if self.channel.outstanding == 0:
            return None
        return self.proxy(*args, **kwargs)


# --- encoding --------------------------------------------------------------------------------
class _Out:
    """One outgoing message: its value nodes, blobs and the tensors it carries."""

    def __init__(self, channel):
        self.channel, self.blobs, self.memo = channel, [], {}
        self.tensors, self.flags = [], []  # tensors sent with data, and whether each needs grad

    def blob(self, data) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def encode(self, value, depth=0):
        if depth > MAX_DEPTH:
            raise _EncodeError("the value is nested too deeply")
        ch = self.channel
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return value if abs(value) < 1 << 63 else {"f": repr(float(value))}
        if isinstance(value, float):
            return value if math.isfinite(value) else {"f": repr(value)}
        torch, np = _torch(), _numpy()
        if torch is not None:
            if isinstance(value, torch.Tensor):
                return self.tensor(value)
            if isinstance(value, torch.Size):
                return {"sz": list(value)}
            if isinstance(value, torch.dtype):
                return {"dt": str(value).removeprefix("torch.")}
            if isinstance(value, torch.device):
                if value.type != "cpu":
                    raise _EncodeError("only CPU tensors and devices cross the boundary")
                return {"dev": "cpu"}
            if isinstance(value, torch.Generator):
                return {"G": ch._generator_id(value)}
        if np is not None:
            if isinstance(value, np.ndarray):
                return self.array(value)
            if isinstance(value, np.generic):
                return self.encode(value.item(), depth + 1)
        if isinstance(value, bytes):
            return {"by": self.blob(value)}
        if isinstance(value, list):
            return {"l": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, tuple):
            return {"t": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if not (k is None or isinstance(k, bool | int | float | str)):
                    raise _EncodeError(f"dict keys must be plain values, got {type(k).__name__}")
                items.append([self.encode(k, depth + 1), self.encode(v, depth + 1)])
            return {"d": items}
        return ch._encode_object(value, self, depth)

    def tensor(self, t):
        if id(t) in self.memo:
            return {"M": self.memo[id(t)]}
        ref = self.channel._tensor_ref(t)
        if ref is not None:
            return {"R": ref}
        node = self.raw_tensor(t)
        node["i"] = len(self.tensors)
        self.memo[id(t)] = node["i"]
        self.tensors.append(t)
        self.flags.append(bool(t.requires_grad))
        if t.requires_grad:
            node["g"] = 1
        return node

    def raw_tensor(self, t):
        """A tensor's bytes, without identity or gradient (argument updates, grad values)."""
        torch = _torch()
        if t.device.type != "cpu" or t.layout != torch.strided or t.is_quantized:
            raise _EncodeError("only dense CPU tensors cross the boundary")
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in _TORCH_DTYPES:
            raise _EncodeError(f"tensors of dtype {dtype} do not cross the boundary")
        data = t.detach().contiguous()
        if data.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        raw = data.reshape(-1).numpy().view("u1").data if data.numel() else b""
        return {"T": dtype, "s": list(t.shape), "b": self.blob(raw)}

    def array(self, a):
        if a.dtype.kind not in "biufc" or a.dtype.itemsize > 16:
            raise _EncodeError(f"numpy arrays of dtype {a.dtype} do not cross the boundary")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        data = a.tobytes() if a.size else b""
        return {"N": a.dtype.str, "s": list(a.shape), "b": self.blob(data)}


# --- decoding ---------------------------------------------------------------------------------
def _shape(node) -> list[int]:
    shape = node.get("s")
    if not (isinstance(shape, list) and len(shape) <= 32):
        raise ProtocolError("a tensor's shape is not a list of at most 32 sizes")
    if not all(type(n) is int and 0 <= n < 1 << 48 for n in shape):
        raise ProtocolError("a tensor's shape has a bad size")
    return shape


class _In:
    """One incoming message's values: tensors first (they become graph nodes), then structure."""

    def __init__(self, channel, blobs):
        self.channel, self.blobs, self.tensors, self.used = channel, blobs, [], set()

    def _blob(self, index):
        if (
            type(index) is not int
            or not 0 <= index < len(self.blobs)
            or index in self.used
            or self.blobs[index] is None
        ):
            raise ProtocolError("a value points at a missing or reused blob")
        self.used.add(index)
        return self.blobs[index]

    def collect(self, node, found, depth=0):
        """Depth-first tensor nodes, in encoding order."""
        if depth > MAX_DEPTH:
            raise ProtocolError("a value is nested too deeply")
        if isinstance(node, list):
            for n in node:
                self.collect(n, found, depth + 1)
        elif isinstance(node, dict):
            if "T" in node:
                found.append(node)
            else:
                for v in node.values():
                    self.collect(v, found, depth + 1)

    def data(self, node):
        """The tensor bytes of a ``T`` node (no graph yet)."""
        import torch

        dtype = node.get("T")
        if dtype not in _TORCH_DTYPES:
            raise ProtocolError(f"a tensor of an unknown dtype {str(dtype)[:20]!r}")
        shape = _shape(node)
        tdtype = getattr(torch, dtype)
        raw = self._blob(node.get("b"))
        count = math.prod(shape)
        itemsize = torch.empty((), dtype=tdtype).element_size()
        if len(raw) != count * itemsize:
            raise ProtocolError("a tensor's bytes do not match its shape")
        if count == 0:
            return torch.empty(shape, dtype=tdtype)
        view_dtype = torch.int16 if tdtype == torch.bfloat16 else tdtype
        t = torch.frombuffer(raw, dtype=view_dtype, count=count).reshape(shape)
        return t.view(tdtype) if view_dtype != tdtype else t

    def decode(self, node, depth=0):
        if depth > MAX_DEPTH:
            raise ProtocolError("a value is nested too deeply")
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            raise ProtocolError("a bare JSON list is not a value")
        if not isinstance(node, dict) or len(node) == 0:
            raise ProtocolError("a value is not a tagged JSON object")
        ch = self.channel
        if "l" in node or "t" in node:
            items = node.get("l", node.get("t"))
            if not isinstance(items, list):
                raise ProtocolError("a list value without a list")
            values = [self.decode(v, depth + 1) for v in items]
            return values if "l" in node else tuple(values)
        if "d" in node:
            out = {}
            if not isinstance(node["d"], list):
                raise ProtocolError("a dict value without a list of pairs")
            for pair in node["d"]:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ProtocolError("a dict item is not a pair")
                key = self.decode(pair[0], depth + 1)
                if not (key is None or isinstance(key, bool | int | float | str)):
                    raise ProtocolError("a dict key is not a plain value")
                out[key] = self.decode(pair[1], depth + 1)
            return out
        if "f" in node:
            if node["f"] not in ("nan", "inf", "-inf"):
                try:
                    return float(node["f"])
                except (TypeError, ValueError):
                    raise ProtocolError("a float that is not a number") from None
            return float(node["f"])
        if "T" in node:
            index = node.get("i")
            if type(index) is not int or not 0 <= index < len(self.tensors):
                raise ProtocolError("a tensor index out of range")
            return self.tensors[index]
        if "M" in node:
            index = node["M"]
            if type(index) is not int or not 0 <= index < len(self.tensors):
                raise ProtocolError("a repeated tensor points nowhere")
            return self.tensors[index]
        if "N" in node:
            import numpy as np

            try:
                dtype = np.dtype(node["N"])
            except TypeError:
                raise ProtocolError("a numpy array of an unknown dtype") from None
            if dtype.kind not in "biufc" or dtype.itemsize > 16:
                raise ProtocolError("a numpy array of a disallowed dtype")
            shape = _shape(node)
            raw = self._blob(node.get("b"))
            if len(raw) != math.prod(shape) * dtype.itemsize:
                raise ProtocolError("an array's bytes do not match its shape")
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if "by" in node:
            return bytes(self._blob(node["by"]))
        if "sz" in node:
            import torch

            return torch.Size(_shape({"s": node["sz"]}))
        if "dt" in node:
            import torch

            if node["dt"] not in _TORCH_DTYPES:
                raise ProtocolError("an unknown dtype")
            return getattr(torch, node["dt"])
        if "dev" in node:
            import torch

            return torch.device("cpu")
        if "G" in node:
            return ch._generator(node["G"])
        if "H" in node:
            return ch._proxy(node["H"], node.get("k"))
        if "R" in node:
            return ch._own(node["R"])
        if "V" in node:
            return ch._decode_value(node, self, depth)
        raise ProtocolError(f"an unknown value tag {_clip(list(node)[:3], 60)}")


# --- the channel --------------------------------------------------------------------------------
class _Timer:
    """No time limits (the grader's side); the sandbox's harness replaces it."""

    def enter(self, seconds):
        pass

    def exit(self):
        pass

    def pause(self):
        pass

    def resume(self):
        pass


class Channel:
    """One end of the connection: ``side`` is ``"grader"`` (trusted: it refuses everything the
    protocol does not allow) or ``"sandbox"``.

    ``resolve(name)`` (sandbox) turns ``sub:NAME`` call targets into the notebook's functions;
    ``handlers`` (sandbox) serve the grader's control requests by kind; ``describe(exc)``
    (sandbox) says where in the notebook an exception happened; ``deadline()`` (grader) gives
    the seconds left to the current test, sent with every request so that the sandbox's own
    alarm fires first, inside the notebook's code; ``timer`` (sandbox) is that alarm.
    """

    def __init__(self, sock, *, side: str, resolve=None, handlers=None, describe=None):
        if side not in ("grader", "sandbox"):
            raise ValueError(f"side must be 'grader' or 'sandbox', got {side!r}")
        self.io = _Socket(sock)
        self.side, self.prefix = side, "x" if side == "grader" else "y"
        self.resolve = resolve
        self.handlers = dict(handlers or {})
        self.describe = describe or (lambda exc: None)
        self.deadline = lambda: None
        self.timer = _Timer()
        self.broken = False
        self.outstanding = 0  # our requests waiting for their reply
        self._ids = itertools.count(1)
        self.reset()

    # --- per-test state ---
    def reset(self):
        """Forget every object, tensor and generator of the current test."""
        self.objects, self.object_ids = {}, {}  # ours, held as handles by the other side
        self.proxies, self.proxy_ids = {}, {}  # theirs, held here as proxies
        self.values, self.value_ids = {}, {}  # ours, copied by value to the other side
        self.mirrors, self.mirror_ids = {}, {}  # theirs, copied here
        self.sent = {}  # our call → (argument tensors we sent, which of them need grad)
        self.served = {}  # their call → (which argument copies need grad, result tensors)
        self.copies = {}  # id(tensor received) → (weakref, back-reference, version)
        self.capturing = {}  # their call being pulled → {argument index: gradient}
        self.generators, self.generator_ids, self.generator_sync = {}, {}, {}
        self.releases = {"a": [], "r": []}  # ours to send: copies of the other side's that died
        self.pending_release = {}  # theirs, applied when the next message arrives
        self.hooks = []  # grader side: hooks the sandbox registered on grader modules
        self.standins = {}  # grader side: handle id → name of the function it stands in for
        self.notes = []  # grader side: failures of the grader's own stand-ins
        torch = _torch()
        if torch is not None:
            g = torch.default_generator
            self.generators["global"], self.generator_ids[id(g)] = g, "global"
            # the grader's global generator is sent with the first message of every test
            if self.side == "sandbox":
                self.generator_sync["global"] = bytes(g.get_state().numpy())

    def close_test(self):
        """Grader side: take the sandbox's hooks off grader modules, then forget everything."""
        for handle in self.hooks:
            handle.remove()
        self.reset()

    def _new_id(self, kind):
        return f"{self.prefix}{kind}{next(self._ids)}"

    # --- objects ---
    def _encode_object(self, value, out, depth):
        if id(value) in self.proxy_ids:  # their object, going home
            return {"R": ["h", self.proxy_ids[id(value)]]}
        if id(value) in self.mirror_ids:
            return {"R": ["v", self.mirror_ids[id(value)]]}
        tag = _value_tag(value)
        if tag is not None:
            vid = self.value_ids.get(id(value))
            if vid is None:
                vid = self._new_id("v")
                self.values[vid], self.value_ids[id(value)] = value, vid
            fields = _values()[tag][1](value)
            return {
                "V": tag,
                "id": vid,
                "a": [[k, out.encode(v, depth + 1)] for k, v in fields.items()],
            }
        if self.side == "grader":
            kind = _grader_kind(value)
        else:
            kind = "callable" if callable(value) else None
        if kind is None:
            raise _EncodeError(f"an object of type {type(value).__name__} cannot be sent")
        hid = self.object_ids.get(id(value))
        if hid is None:
            hid = self._new_id("h")
            self.objects[hid], self.object_ids[id(value)] = value, hid
        return {"H": hid, "k": kind}

    def _proxy(self, hid, kind):
        if not (isinstance(hid, str) and hid[:1] not in ("", self.prefix) and len(hid) < 40):
            raise ProtocolError("a handle with a bad id")
        proxy = self.proxies.get(hid)
        if proxy is None:
            cls = _PROXIES.get(kind, RemoteObject) if self.side == "sandbox" else RemoteObject
            proxy = cls(self, hid)
            self.proxies[hid], self.proxy_ids[id(proxy)] = proxy, hid
        return proxy

    def _decode_value(self, node, inp, depth):
        tag, vid, fields = node.get("V"), node.get("id"), node.get("a")
        if tag not in _values() or not isinstance(fields, list) or not isinstance(vid, str):
            raise ProtocolError("an unknown value object")
        if vid[:1] in ("", self.prefix) or len(vid) > 40:
            raise ProtocolError("a value object with a bad id")
        if not all(isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) for f in fields):
            raise ProtocolError("a value object's fields are not name-value pairs")
        decoded = {k: inp.decode(v, depth + 1) for k, v in fields}
        if vid in self.mirrors:
            return self.mirrors[vid]
        try:
            obj = _values()[tag][2](decoded)
        except (KeyError, TypeError, ValueError) as err:
            raise ProtocolError(f"a {tag} that cannot be rebuilt: {_clip(err, 200)}") from None
        self.mirrors[vid], self.mirror_ids[id(obj)] = obj, vid
        return obj

    def _own(self, ref):
        """One of our own objects, sent back by the other side."""
        try:
            kind = ref[0]
            if kind == "h":
                return self.objects[ref[1]]
            if kind == "v":
                return self.values[ref[1]]
            if kind == "a":  # argument ref[2] of our call ref[1]
                return self.sent[ref[1]][0][ref[2]]
            if kind == "r":  # result ref[2] we returned for their call ref[1]
                return self.served[ref[1]][1][ref[2]]
        except (KeyError, IndexError, TypeError):
            pass
        raise ProtocolError("a back-reference to an object we do not have")

    # --- tensors ---
    def _tensor_ref(self, t):
        entry = self.copies.get(id(t))
        if entry is not None and entry[0]() is t and t._version == entry[2]:
            return entry[1]
        return None

    def _remember_copy(self, t, ref):
        key = id(t)
        self.copies[key] = (weakref.ref(t), ref, t._version)
        weakref.finalize(t, self.copies.pop, key, None)

    def _token(self, kind, call):
        token = _Token(self, call)
        weakref.finalize(token, self._release, kind, call)
        return token

    def _release(self, kind, call):
        self.releases[kind].append(call)

    def _tensors(self, inp, node):
        found = []
        inp.collect(node, found)
        for index, n in enumerate(found):
            if n.get("i") != index:
                raise ProtocolError("tensor indices are not in order")
        return found

    def _decode_plain(self, node, blobs):
        """A value without graph links (control requests, gradients)."""
        inp = _In(self, blobs)
        inp.tensors = [inp.data(n) for n in self._tensors(inp, node)]
        return inp.decode(node)

    def _decode_args(self, node, blobs, call):
        """A request's arguments: tensors that need grad become ArgLink nodes."""
        inp = _In(self, blobs)
        found = self._tensors(inp, node)
        token = self._token("a", call) if found else None
        for index, n in enumerate(found):
            t = inp.data(n)
            if n.get("g"):
                f = _functions()
                with _torch().enable_grad():
                    t = f["arg"].apply(f["anchor"], t, token, index)
            t._vg_token = token
            self._remember_copy(t, ["a", call, index])
            inp.tensors.append(t)
        return inp.decode(node), inp.tensors, [bool(n.get("g")) for n in found]

    def _decode_results(self, node, blobs, call, sent):
        """A reply's values: tensors that need grad are outputs of one Result node."""
        inp = _In(self, blobs)
        found = self._tensors(inp, node)
        if not found:
            return inp.decode(node)
        token = self._token("r", call)
        inp.tensors = [inp.data(n) for n in found]
        grad = [i for i, n in enumerate(found) if n.get("g")]
        if grad:
            f = _functions()
            token.outputs = [inp.tensors[i] for i in grad]
            token.inputs = [t for t, g in zip(*sent) if g]
            with _torch().enable_grad():
                outs = f["result"].apply(token, f["anchor"], *token.inputs)
            token.outputs = None
            for i, t in zip(grad, outs):
                inp.tensors[i] = t
        for index, t in enumerate(inp.tensors):
            t._vg_token = token
            self._remember_copy(t, ["r", call, index])
        return inp.decode(node)

    # --- gradients ---
    def _arg_gradient(self, call, index, grad):
        """ArgLink.backward: captured while the caller pulls this call, else pushed to it."""
        captured = self.capturing.get(call)
        if captured is not None:
            captured[index] = grad if index not in captured else captured[index] + grad
        else:
            self._request({"kind": "push", "call": call, "index": index}, value=grad.detach())

    def _pull(self, token, grads):
        """Result.backward: the callee's vector-Jacobian product for our call's arguments."""
        value = [None if g is None else g.detach() for g in grads]
        reply = self._request({"kind": "pull", "call": token.call}, value=value)
        inputs = token.inputs
        torch = _torch()
        if not (isinstance(reply, list) and len(reply) == len(inputs)):
            raise ProtocolError("a gradient reply of the wrong length")
        for g, t in zip(reply, inputs):
            if g is not None and not (isinstance(g, torch.Tensor) and g.shape == t.shape):
                raise ProtocolError("a gradient that does not match its tensor")
        return [g if g is None else g.to(t.dtype) for g, t in zip(reply, inputs)]

    def _serve_pull(self, header, grads):
        call = header.get("call")
        if call not in self.served:
            raise ProtocolError("a gradient for a call we do not have")
        flags, results = self.served[call]
        with_grad = [t for t in results if t.requires_grad]
        if not (isinstance(grads, list) and len(grads) == len(with_grad)):
            raise ProtocolError("a pull with the wrong number of gradients")
        torch = _torch()
        pairs = [(t, g) for t, g in zip(with_grad, grads) if g is not None]
        if not all(isinstance(g, torch.Tensor) and g.shape == t.shape for t, g in pairs):
            raise ProtocolError("a gradient that does not match its result")
        self.capturing[call] = captured = {}
        try:
            if pairs:
                with torch.enable_grad():
                    torch.autograd.backward(
                        [t for t, _ in pairs],
                        [g.to(t.dtype) for t, g in pairs],
                        retain_graph=True,
                    )
        finally:
            del self.capturing[call]
        return [captured.get(i) for i, g in enumerate(flags) if g]

    def _serve_push(self, header, grad):
        call, index = header.get("call"), header.get("index")
        try:
            original = self.sent[call][0][index]
        except (KeyError, IndexError, TypeError):
            raise ProtocolError("a gradient for an argument we do not have") from None
        torch = _torch()
        if not (isinstance(grad, torch.Tensor) and grad.shape == original.shape):
            raise ProtocolError("a gradient that does not match its tensor")
        if original.requires_grad:
            with torch.enable_grad():
                torch.autograd.backward(original, grad.to(original.dtype), retain_graph=True)

    # --- generators ---
    def _generator_id(self, g):
        gid = self.generator_ids.get(id(g))
        if gid is None:
            gid = self._new_id("g")
            self.generators[gid], self.generator_ids[id(g)] = g, gid
        return gid

    def _generator(self, gid):
        if gid not in self.generators:
            raise ProtocolError("a generator whose state was never sent")
        return self.generators[gid]

    def _generators_out(self, out):
        changed = {}
        for gid, g in self.generators.items():
            state = bytes(g.get_state().numpy())
            if self.generator_sync.get(gid) != state:
                self.generator_sync[gid] = state
                changed[gid] = out.blob(state)
        return changed

    def _generators_in(self, states, blobs):
        if not isinstance(states, dict) or len(states) > 100_000:
            raise ProtocolError("generator states are not a map")
        inp = _In(self, blobs)
        for gid, index in states.items():
            raw = bytes(inp._blob(index))
            torch = _torch()
            if torch is None:  # the notebook never imported torch: nothing can use it
                continue
            g = self.generators.get(gid)
            if g is None:
                if not (
                    isinstance(gid, str) and gid[:1] not in ("", self.prefix) and len(gid) < 40
                ):
                    raise ProtocolError("a generator with a bad id")
                g = torch.Generator()
                self.generators[gid], self.generator_ids[id(g)] = g, gid
            try:
                g.set_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
            except (RuntimeError, ValueError):
                raise ProtocolError("a generator state that torch rejects") from None
            self.generator_sync[gid] = raw
        return inp.used

    # --- messages ---
    def _send(self, header: dict, out: _Out) -> int:
        header["id"] = msg_id = next(self._ids)
        header["gens"] = self._generators_out(out)
        releases, self.releases = self.releases, {"a": [], "r": []}
        if releases["a"] or releases["r"]:
            header["rel"] = releases
        try:
            self.io.send(header, out.blobs)
        except OSError as err:
            self.broken = True
            raise PeerLost(f"the connection broke: {err}") from None
        except BaseException:
            self.broken = True
            raise
        return msg_id

    def _recv(self):
        # the previous message's releases apply now: that message may still have referred to
        # what it released (a result is released by the very reply that returns it)
        rel, self.pending_release = self.pending_release, {}
        for call in rel.get("a", []):
            if isinstance(call, str):
                self.sent.pop(call, None)
        for call in rel.get("r", []):
            if isinstance(call, str):
                self.served.pop(call, None)
        try:
            header, blobs = self.io.recv()
            if not isinstance(header.get("id"), int):
                raise ProtocolError("a message without an id")
            used = self._generators_in(header.get("gens", {}), blobs)
            blobs = [None if i in used else b for i, b in enumerate(blobs)]
            rel = header.get("rel", {})
            if not isinstance(rel, dict) or not all(isinstance(v, list) for v in rel.values()):
                raise ProtocolError("releases are not a map of lists")
            self.pending_release = rel
        except OSError as err:
            self.broken = True
            raise PeerLost(f"the connection broke: {err}") from None
        except BaseException:
            self.broken = True
            raise
        return header, blobs

    def _exchange(self, header, out):
        """Send a request; serve the other side's requests until its reply arrives."""
        if self.broken:
            raise PeerLost("the connection is broken")
        self.timer.pause()
        self.outstanding += 1
        try:
            msg_id = self._send(header, out)
            while True:
                reply, blobs = self._recv()
                if "re" not in reply:
                    self._serve(reply, blobs)
                    continue
                if reply["re"] != msg_id or reply.get("kind") not in ("ok", "error"):
                    self.broken = True
                    raise ProtocolError("a reply out of turn")
                return reply, blobs
        finally:
            self.outstanding -= 1
            self.timer.resume()

    def _raise(self, reply):
        err = reply.get("error")
        if not isinstance(err, dict):
            raise ProtocolError("an error reply without an error")
        where = err.get("where")
        if where is not None:
            if not (
                isinstance(where, list)
                and len(where) == 3
                and isinstance(where[0], str)
                and type(where[1]) is int
                and type(where[2]) is int
            ):
                raise ProtocolError("an error's location is malformed")
            where = (_clip(where[0], 80), where[1], where[2])
        name, message = _clip(err.get("type", "Error"), 60), _clip(err.get("message", ""))
        if self.side == "sandbox":  # the notebook's code sees an ordinary exception
            raise _BUILTIN_ERRORS.get(name, RuntimeError)(message)
        raise RemoteError(name, message, where)

    def _request(self, header, *, value=None):
        """A pull, push or control request; returns the reply's value."""
        out = _Out(self)
        try:
            header["value"] = out.encode(value)
        except _EncodeError as err:
            raise TypeError(str(err)) from None
        header["time"] = self.deadline()
        reply, blobs = self._exchange(header, out)
        if reply["kind"] == "error":
            self._raise(reply)
        return self._decode_plain(reply.get("value"), blobs)

    def control(self, kind, value=None, **fields):
        """A control request of the grader (``load``, ``begin``, ``end``, ``replace``, …)."""
        return self._request({"kind": kind, **fields}, value=value)

    def call(self, target, method, args, kwargs):
        """``target.method(*args, **kwargs)`` on the other side; its result."""
        torch = _torch()
        call = self._new_id("c")
        out = _Out(self)
        try:
            args_node = out.encode(list(args))
            kwargs_node = out.encode(dict(kwargs))
        except _EncodeError as err:
            raise TypeError(f"cannot be passed to the other process: {err}") from None
        header = {
            "kind": "call",
            "call": call,
            "target": target,
            "method": method,
            "args": args_node,
            "kwargs": kwargs_node,
            "grad": bool(torch.is_grad_enabled()) if torch is not None else True,
            "time": self.deadline(),
        }
        sent = (out.tensors, out.flags)  # the other side may release them with its reply
        if out.tensors:
            self.sent[call] = sent
        reply, blobs = self._exchange(header, out)
        self._apply_updates(sent[0], reply.get("mut"), blobs)
        if reply["kind"] == "error":
            self._raise(reply)
        return self._decode_results(reply.get("value"), blobs, call, sent)

    def _apply_updates(self, sent, updates, blobs):
        """Copy back arguments the callee modified in place."""
        if not updates:
            return
        inp = _In(self, blobs)
        if not isinstance(updates, list):
            raise ProtocolError("argument updates are not a list")
        torch = _torch()
        for item in updates:
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int):
                raise ProtocolError("an argument update is not a pair")
            if not 0 <= item[0] < len(sent) or not isinstance(item[1], dict):
                raise ProtocolError("an update of an argument we did not send")
            data, target = inp.data(item[1]), sent[item[0]]
            if data.shape != target.shape or data.dtype != target.dtype:
                raise ProtocolError("an argument update of the wrong shape")
            with torch.no_grad():
                target.copy_(data)

    # --- serving ---
    def serve(self):
        """The sandbox's loop: serve requests until the grader says ``bye`` or goes away."""
        while True:
            header, blobs = self._recv()
            if "re" in header:
                raise ProtocolError("a reply nobody asked for")
            if header.get("kind") == "bye":
                return
            self._serve(header, blobs)

    def _serve(self, header, blobs):
        kind = header.get("kind")
        if kind not in ("call", "pull", "push") and kind not in self.handlers:
            self.broken = True
            raise ProtocolError(f"an unknown request {_clip(kind, 40)!r}")
        time_left = header.get("time")
        if time_left is not None and not isinstance(time_left, int | float):
            self.broken = True
            raise ProtocolError("a time limit that is not a number")
        out, updates = _Out(self), []
        try:
            self.timer.enter(time_left)
            try:
                if kind == "call":
                    value, updates = self._serve_call(header, blobs, out)
                elif kind == "pull":
                    grads = self._decode_plain(header.get("value"), blobs)
                    value = out.encode(self._serve_pull(header, grads))
                elif kind == "push":
                    grad = self._decode_plain(header.get("value"), blobs)
                    value = out.encode(self._serve_push(header, grad))
                else:
                    request = self._decode_plain(header.get("value"), blobs)
                    value = out.encode(self.handlers[kind](header, request))
            finally:
                self.timer.exit()
        except (ProtocolError, PeerLost):
            self.broken = True
            raise
        except BaseException as exc:
            if self.side == "grader" and not isinstance(exc, Exception):
                raise  # the grader's own time limit, or the sandbox is gone: no answer
            out = _Out(self)
            reply = {"re": header["id"], "kind": "error", "error": self._error(exc)}
            self._send(self._with_updates(reply, updates, out), out)
            return
        reply = {"re": header["id"], "kind": "ok", "value": value}
        self._send(self._with_updates(reply, updates, out), out)

    @staticmethod
    def _with_updates(reply, updates, out):
        if updates:
            reply["mut"] = [[i, out.raw_tensor(t)] for i, t in updates]
        return reply

    def _error(self, exc):
        message = str(exc)
        if self.side == "grader" and isinstance(exc, AssertionError):
            message = "a check of the grader failed"
        where = self.describe(exc) if self.side == "sandbox" else None
        return {"type": type(exc).__name__, "message": _clip(message), "where": where}

    def _serve_call(self, header, blobs, out):
        call, target, method = header.get("call"), header.get("target"), header.get("method")
        if not (isinstance(call, str) and call[:1] not in ("", self.prefix) and len(call) < 40):
            raise ProtocolError("a call with a bad id")
        if not isinstance(target, str) or not isinstance(method, str):
            raise ProtocolError("a call without a target and a method")
        if not isinstance(header.get("grad"), bool):
            raise ProtocolError("a call without its grad mode")
        (args, kwargs), copies, flags = self._decode_args(
            {"t": [header.get("args"), header.get("kwargs")]}, blobs, call
        )
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ProtocolError("call arguments are not a list and a dict")
        if not all(isinstance(k, str) for k in kwargs):
            raise ProtocolError("keyword arguments with non-string names")
        versions = [t._version for t in copies]
        fn = self._callable(target, method, args)
        torch = _torch()
        mode = torch.set_grad_enabled(header["grad"]) if torch else contextlib.nullcontext()
        standin = self.standins.get(target) if method == "__call__" else None
        try:
            with mode:
                result = fn(*args, **kwargs)
        except Exception as exc:
            if standin is not None:
                self.notes.append(
                    f"the grader's stand-in for `{standin}` raised {type(exc).__name__}: "
                    f"{_clip(exc, 300)}"
                )
            raise
        if self.side == "grader":
            self._check_finite(standin, [args, kwargs], result)
        if self.side == "grader" and method.startswith("register_forward"):
            self.hooks.append(result)
        updates = [(i, t) for i, (t, v) in enumerate(zip(copies, versions)) if t._version != v]
        try:
            value = out.encode(result)
        except _EncodeError as err:
            raise TypeError(
                f"returned something the grader cannot read back ({err}); return tensors, "
                "numbers, strings, lists, tuples or dicts"
            ) from None
        if out.tensors:  # kept for pulls and back-references until the caller drops them
            self.served[call] = (flags, list(out.tensors))
        return value, updates

    def _check_finite(self, standin, inputs, result):
        """A grader function (a stand-in, or one the test passed to the notebook) returning
        NaN or inf for finite inputs is the grader's fault, not the notebook's."""
        torch = _torch()
        if torch is None:
            return

        def finite(v):
            if isinstance(v, torch.Tensor):
                return not v.is_floating_point() or bool(torch.isfinite(v).all())
            if isinstance(v, list | tuple):
                return all(finite(x) for x in v)
            if isinstance(v, dict):
                return all(finite(x) for x in v.values())
            if isinstance(v, float):
                return math.isfinite(v)
            return True

        if finite(inputs) and not finite(result):
            what = f"stand-in for `{standin}`" if standin else "function passed to the notebook"
            self.notes.append(f"the grader's {what} returned NaN or inf for finite inputs")

    def _callable(self, target, method, args):
        if self.side == "sandbox":
            if method != "__call__":
                raise ProtocolError("the sandbox only calls functions")
            if target.startswith("sub:"):
                return self.resolve(target[4:])
            if target not in self.objects:
                raise ProtocolError("a call of an object we do not have")
            return self.objects[target]
        obj = self.objects.get(target)
        if obj is None:
            raise ProtocolError("a call of an object the grader never sent")
        kind = _grader_kind(obj)
        allowed = set(GRADER_METHODS.get(kind, ()))
        if kind == "module":
            from visgen.nn.autoencoder import Autoencoder

            if isinstance(obj, Autoencoder):
                allowed |= GRADER_METHODS["autoencoder"]
        if method not in allowed:
            raise AttributeError(
                f"{type(obj).__name__}.{method} is not available to graded code "
                "(the object stays in the grader)"
            )
        if method.startswith("register_forward"):
            if not args or not isinstance(args[0], RemoteObject):
                raise TypeError("a hook must be a function of the notebook")
            args[0] = _GuardedHook(self, args[0])
        if method in ("modules", "named_modules", "children", "named_children"):
            bound = getattr(obj, method)
            return lambda *a, **k: list(bound(*a, **k))
        return obj if method == "__call__" else getattr(obj, method)
