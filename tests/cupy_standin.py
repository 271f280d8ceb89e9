"""A strict CuPy stand-in on the CPU, so the ``gpu`` tests run on every machine (issue 31).

``tests/conftest.py`` installs it as ``cupy`` and ``cupyx`` only where real CuPy with a CUDA
device is absent, and a test that ran on it says so in its id (``[cupy-standin]``). It proves the
Python side of minirec's GPU path — which arrays live on the device, what crosses between host
and device, what ``cupy.fuse`` is given — and never a GPU figure: the arithmetic is NumPy's.

What it does as CuPy 14.2 does (read from CuPy's source, tag v14.2.0: ``cupy/_core/core.pyx``,
``_kernel.pyx``, ``_scalar.pyx``, ``_routines_indexing.pyx``, ``fusion.pyx``, ``cupy/random``):

* ``ndarray`` holds a NumPy array host code cannot reach: ``np.asarray(a)`` raises TypeError
  ("Implicit conversion to a NumPy array is not allowed"); ``a.get()`` and ``asnumpy(a)`` copy
  it to the host, ``asarray(host)`` copies it over (never shared memory).
* ``float(a)``, ``int(a)``, ``bool(a)`` of a one-element array, ``a.item()``, ``a.tolist()``,
  ``repr``, ``format``: host reads CuPy allows (it synchronises). ``a[i]`` and reductions give
  0-d device arrays, never Python numbers; there is no ``__index__`` (``range(a)`` fails).
* Operands of arithmetic, ufuncs and ``concatenate``: device arrays and Python/NumPy scalars; a
  NumPy array raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``.
* Indices may be NumPy arrays or lists (CuPy copies them over). Assigning through basic indices
  (integers, slices) refuses a non-scalar NumPy value ("non-scalar numpy.ndarray cannot be used
  for fill"); through array indices CuPy copies the value over, and so does this.
* ``add.at`` and ``cupyx.scatter_add``: the dtypes CuPy's atomic adds take.
* ``fuse``: device arrays and scalars (a NumPy array raises); inside, host reads and indexing
  raise; the kernel is named after the function and must be a C identifier (CuPy's fallback
  fusion writes ``__global__ void <lambda>(...)``, which does not compile).
* ``random.RandomState(seed).permutation(n)`` and ``random.default_rng(seed)``: seeded,
  reproducible, and not NumPy's stream for the same seed (cuRAND's is not either, so a test
  that expects a GPU draw to equal a CPU one fails here as it would on the card).
* ``repeat`` takes a device array of counts (CuPy 14.1 and later; 14.0 and 13 refused it).

Its arithmetic is NumPy's, bit for bit, unless ``MINIREC_STANDIN_ULPS=<seed>`` moves each fused
kernel's outputs and each scatter-add's rows by up to one ulp, as a GPU's rounding would: a
test whose tolerance holds only for NumPy's exact rounding then fails here too.

Stricter than CuPy on purpose, in one respect: CuPy forwards a NumPy function or ufunc called on
its arrays to its own (NEP 13/18: ``np.sqrt(a)`` runs ``cupy.sqrt``) and returns a device array
where the code may expect a host one. minirec's array code calls ``xp``, so here the call
raises, naming the function. (``np.float32(2) * a`` is arithmetic, and works.) Functions other
than ufuncs also want a device array first (``cupy.unique(host)`` raises).
"""
import builtins
import os
import re
import sys
import types

import numpy as np

__version__ = "14.2.0"
STANDIN = True  # minirec.backend: counts as a device for backend="cupy", never chosen by "auto"
_PY_SCALARS = (int, float, bool, complex)
_fusing = 0  # > 0 while a fused function is traced (see Fusion)
# MINIREC_STANDIN_ULPS=<seed>: the GPU's rounding, roughly. A fused kernel's outputs and the rows a
# scatter-add touched move by up to one unit in the last place (nvcc contracts a*b + c into one
# fused multiply-add; atomic adds run in no fixed order), so a test whose tolerance holds only
# for NumPy's exact rounding fails here as it would on a card. Off by default.
_ULPS = (np.random.default_rng(int(os.environ["MINIREC_STANDIN_ULPS"]))
         if os.environ.get("MINIREC_STANDIN_ULPS") else None)


def _rounded_like_a_gpu(a):
    """``a`` (a float NumPy array, changed in place) one ulp nearer zero, one further, or as it
    was, entry by entry (never across zero: a second moment stays >= 0)."""
    if _ULPS is not None and a.dtype.kind == "f" and a.size:
        step = _ULPS.integers(-1, 2, a.shape)
        away, toward = np.nextafter(a, np.copysign(np.inf, a)), np.nextafter(a, 0)
        a[...] = np.where(a == 0, a, np.where(step > 0, away, np.where(step < 0, toward, a)))
    return a


def _scalar(x):
    """CuPy's kernel scalars: Python int/float/bool/complex (exact types) and NumPy scalars."""
    return type(x) in _PY_SCALARS or isinstance(x, np.generic)


def _operand(x):
    """The NumPy array behind a kernel operand; a scalar as it is; anything else is refused as
    CuPy's kernels refuse it (``_scalar.CScalar``)."""
    if isinstance(x, ndarray):
        return x._a
    if _scalar(x):
        return x
    raise TypeError(f"Unsupported type {type(x)}")


def _arg(x):
    """A function's argument: device arrays unwrapped (in lists too); NumPy arrays refused;
    anything else (axes, dtypes, shapes, None) as it is."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_arg(v) for v in x)
    return x


def _wrap(r):
    """NumPy results as device arrays (a NumPy scalar becomes a 0-d array, as in CuPy)."""
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    if isinstance(r, np.ndarray):
        return ndarray._of(r)
    if isinstance(r, np.generic):
        return ndarray._of(np.asarray(r))
    return r


def _not_fusing(what):
    if _fusing:
        raise TypeError(f"{what} inside cupy.fuse: a fused kernel runs elementwise on the "
                        "device, with no host reads and no indexing")


def _index(key):
    """An index with device arrays unwrapped; NumPy arrays and lists pass (CuPy copies them)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key._a if isinstance(key, ndarray) else key


def _advanced(key):
    keys = key if isinstance(key, tuple) else (key,)
    return builtins.any(isinstance(k, (np.ndarray, list, tuple, bool, np.bool_)) for k in keys)


class ndarray:
    """A device array: the NumPy array ``_a`` is reachable only through CuPy's own doors."""
    __slots__ = ("_a",)
    __hash__ = None

    def __init__(self, shape, dtype=float):
        self._a = np.empty(shape, dtype)

    @classmethod
    def _of(cls, a):
        obj = cls.__new__(cls)
        obj._a = a
        return obj

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: ndarray._of(self._a.T))
    device = property(lambda self: cuda.Device(0))

    # ----- the doors to the host ------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy's ufunc was called with a device array: arithmetic with a NumPy scalar on the
        left (``np.float32(2) * a``) runs; a NumPy array among the inputs raises as in CuPy;
        any other NumPy ufunc on a device array raises (stricter than CuPy: see the module)."""
        if builtins.any(isinstance(x, np.ndarray) for x in inputs):
            raise TypeError(f"Unsupported type {np.ndarray}")
        mine = _UFUNCS.get(ufunc.__name__)
        if (method == "__call__" and not kwargs and len(inputs) == 2 and mine is not None
                and ufunc.__name__ in _OPERATORS and builtins.any(isinstance(x, np.generic) for x in inputs)):
            return mine(*inputs)
        raise TypeError(f"numpy.{ufunc.__name__} was called on a device array: CuPy would run "
                        f"cupy.{ufunc.__name__} and hand back a device array; minirec's array "
                        f"code calls xp.{ufunc.__name__} (or brings the array to the host with "
                        ".get() / backend.to_numpy first)")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a device array: CuPy would run "
                        f"cupy.{func.__name__} and hand back a device array; minirec's array "
                        f"code calls xp.{func.__name__} (or brings the array to the host with "
                        ".get() / backend.to_numpy first)")

    def get(self, stream=None, order="C", out=None, blocking=True):
        _not_fusing("a.get()")
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def item(self):
        _not_fusing("a.item()")
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._a.item()

    def tolist(self):
        _not_fusing("a.tolist()")
        return self._a.tolist()

    def __float__(self):
        _not_fusing("float(a)")
        return float(self._a)

    def __int__(self):
        _not_fusing("int(a)")
        return int(self._a)

    def __complex__(self):
        _not_fusing("complex(a)")
        return complex(self._a)

    def __bool__(self):
        _not_fusing("bool(a)")
        return bool(self._a)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    # ----- indexing -------------------------------------------------------------------------
    def __getitem__(self, key):
        _not_fusing("indexing")
        key = _index(key)
        out = self._a[key]
        if isinstance(out, np.generic):  # a[i] is a 0-d view on the device, not a number
            out = self._a[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
        return ndarray._of(out)

    def __setitem__(self, key, value):
        _not_fusing("assignment by index")
        key = _index(key)
        if isinstance(value, ndarray):
            value = value._a
        elif not _scalar(value):
            value = np.asarray(value)  # array indices: CuPy copies the value over
            if not _advanced(key) and value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a[key] = value

    # ----- methods --------------------------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        out = self._a.astype(dtype, order=order, copy=copy)
        return self if out is self._a else ndarray._of(out)

    def fill(self, value):
        if isinstance(value, ndarray):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        elif np.asarray(value).shape != ():
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(value)

    def scatter_add(self, slices, value):
        _at("add", self, slices, value)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)


def _method(name):
    def method(self, *args, **kwargs):
        return _wrap(getattr(self._a, name)(*_arg(args), **{k: _arg(v) for k, v in kwargs.items()}))
    method.__name__ = name
    return method


for _name in ("sum", "mean", "max", "min", "prod", "std", "var", "any", "all", "argmax", "argmin",
              "cumsum", "copy", "view", "reshape", "ravel", "flatten", "transpose", "squeeze",
              "swapaxes", "repeat", "take", "clip", "nonzero", "argsort", "sort", "dot", "conj",
              "round", "diagonal"):
    setattr(ndarray, _name, _method(_name))


class ufunc:
    """An elementwise function: operands as ``_operand`` allows, results on the device."""

    def __init__(self, name, nin):
        self.__name__, self.name, self.nin = name, f"cupy_{name}", nin

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args, out=None, dtype=None, **kwargs):
        arrays = [_operand(a) for a in args]
        if out is not None:
            if not isinstance(out, ndarray):
                raise TypeError("Output arguments must be cupy.ndarray")
            getattr(np, self.__name__)(*arrays, out=out._a, dtype=dtype, **kwargs)
            return out
        return _wrap(getattr(np, self.__name__)(*arrays, dtype=dtype, **kwargs))

    def at(self, a, indices, b=None):
        _at(self.__name__, a, indices, b)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        if self.__name__ != "add":
            raise NotImplementedError(f"`{self.name}.reduce` is not supported yet")
        return array.sum(axis, dtype, out, keepdims)


_ATOMIC_ADD = (np.int32, np.int64, np.float16, np.float32, np.float64, np.uint32, np.uint64)


def _at(op, a, indices, value):
    """``ufunc.at``: CuPy supports add (atomic adds) on the dtypes listed in its source."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    if op != "add":
        raise NotImplementedError(f"`cupy_{op}.at` is not supported by this stand-in")
    v = value._a if isinstance(value, ndarray) else np.asarray(value)  # CuPy copies it over
    v = v.astype(a.dtype, copy=False)
    if not issubclass(v.dtype.type, _ATOMIC_ADD):
        raise TypeError("cupy.add.at only supports int32, int64, float16, float32, float64, "
                        "uint32, uint64 as data type")
    np.add.at(a._a, _index(indices), v)
    if _ULPS is not None:
        rows = np.unique(np.asarray(_index(indices)).ravel())
        a._a[rows] = _rounded_like_a_gpu(a._a[rows])


_OPERATORS = {"add", "subtract", "multiply", "true_divide", "divide", "floor_divide", "remainder",
              "power", "less", "less_equal", "equal", "not_equal", "greater", "greater_equal",
              "bitwise_and", "bitwise_or", "bitwise_xor", "matmul"}
_UNARY = ("negative", "positive", "absolute", "sqrt", "square", "exp", "expm1", "log", "log1p",
          "log2", "log10", "sign", "isfinite", "isnan", "isinf", "floor", "ceil", "rint", "tanh",
          "sin", "cos", "logical_not", "invert", "reciprocal")
_BINARY = tuple(sorted(_OPERATORS - {"matmul"})) + ("logaddexp", "maximum", "minimum",
                                                     "logical_and", "logical_or", "arctan2")
_UFUNCS = {name: ufunc(name, 1) for name in _UNARY}
_UFUNCS.update({name: ufunc(name, 2) for name in _BINARY})
globals().update(_UFUNCS)
abs = absolute  # noqa: A001  (cupy.abs is cupy.absolute)


def matmul(a, b):
    return _wrap(np.matmul(_operand(a), _operand(b)))


def _dunder(op, name, reflected=False, inplace=False):
    f = _UFUNCS[name]
    if inplace:
        method = lambda self, other: f(self, other, out=self)  # noqa: E731
    elif reflected:
        method = lambda self, other: f(other, self)  # noqa: E731
    else:
        method = lambda self, other: f(self, other)  # noqa: E731
    setattr(ndarray, op, method)


for _op, _name in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                   ("truediv", "true_divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                   ("pow", "power"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                   ("xor", "bitwise_xor")):
    _dunder(f"__{_op}__", _name)
    _dunder(f"__r{_op}__", _name, reflected=True)
    _dunder(f"__i{_op}__", _name, inplace=True)
for _op, _name in (("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                   ("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")):
    def _compare(self, other, f=_UFUNCS[_name], op=_op):
        if isinstance(other, np.ndarray) and other.ndim == 0:
            other = other.item()  # CuPy's __richcmp__ does the same
        if op in ("eq", "ne") and (other is None or type(other).__eq__ is object.__eq__):
            return ndarray._of(np.full(self.shape, op == "ne"))
        return f(self, other)
    setattr(ndarray, f"__{_op}__", _compare)
ndarray.__neg__ = lambda self: negative(self)  # noqa: F821  (made by globals().update above)
ndarray.__pos__ = lambda self: positive(self)  # noqa: F821
ndarray.__abs__ = lambda self: absolute(self)  # noqa: F821
ndarray.__invert__ = lambda self: invert(self)  # noqa: F821
ndarray.__module__ = "cupy"  # as real CuPy's arrays: minirec tells them apart by their module


# ----- creating arrays and moving them ----------------------------------------------------------
def array(obj, dtype=None, copy=True, order="K", ndmin=0, blocking=False):
    """A device array from anything array-like on the host (a copy: never shared memory)."""
    if isinstance(obj, ndarray):
        return ndarray._of(np.array(obj._a, dtype=dtype, copy=copy or None, order=order, ndmin=ndmin))
    if isinstance(obj, (list, tuple)) and builtins.any(isinstance(x, ndarray) for x in obj):
        obj = _arg(obj)  # a list of device arrays, stacked on the device
    return ndarray._of(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        if copy:
            return ndarray._of(a._a.astype(dtype or a.dtype, copy=True))
        return a if dtype is None else a.astype(dtype, copy=False)
    return array(a, dtype=dtype, order=order or "K")


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream, order, out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if builtins.any(isinstance(a, ndarray) for a in args) else np


def _creation(name):
    f = getattr(np, name)

    def create(*args, **kwargs):
        return _wrap(f(*_arg(args), **{k: _arg(v) for k, v in kwargs.items()}))
    create.__name__ = name
    return create


def _function(name, module=np):
    """``cupy.<name>``: its first argument (or first list of them) must be on the device."""
    f = getattr(module, name)

    def call(a, *args, **kwargs):
        _not_fusing(f"cupy.{name}")
        first = a if isinstance(a, (list, tuple)) else (a,)
        if not first or not builtins.all(isinstance(x, ndarray) for x in first):
            what = "Only cupy arrays can be concatenated" if name == "concatenate" else \
                f"cupy.{name} needs device arrays, got {[type(x) for x in first]}"
            raise TypeError(what)
        return _wrap(f(_arg(a), *_arg(args), **{k: _arg(v) for k, v in kwargs.items()}))
    call.__name__ = name
    return call


for _name in ("zeros", "ones", "empty", "full", "arange", "linspace", "eye", "identity"):
    globals()[_name] = _creation(_name)
for _name in ("zeros_like", "ones_like", "empty_like", "full_like", "concatenate", "stack",
              "hstack", "vstack", "unique", "repeat", "cumsum", "clip", "argmax", "argmin",
              "argsort", "sort", "where", "sum", "mean", "amax", "amin", "max", "min", "dot",
              "outer", "searchsorted", "bincount", "flatnonzero", "nonzero", "count_nonzero",
              "take", "diag", "ravel", "reshape", "transpose", "any", "all", "isin",
              "allclose", "array_equal", "tril", "triu", "trace"):
    globals()[_name] = _function(_name)
for _name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
              "uint16", "uint32", "uint64", "intp", "bool_", "complex64", "complex128", "dtype",
              "inf", "nan", "pi", "e", "newaxis", "result_type", "can_cast", "promote_types",
              "iinfo", "finfo"):
    globals()[_name] = getattr(np, _name)

linalg = types.ModuleType("cupy.linalg")
for _name in ("solve", "inv", "cholesky", "svd", "qr", "eigh", "norm", "det", "slogdet"):
    setattr(linalg, _name, _function(_name, np.linalg))


# ----- cupy.fuse -------------------------------------------------------------------------------
_KERNEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z_0-9]*$")  # cupy/cuda/compiler.py


class Fusion:
    """``cupy.fuse(f)``: one elementwise kernel named after ``f`` (or ``kernel_name``)."""

    def __init__(self, func, name=None):
        self.func, self.name = func, name or func.__name__

    def __call__(self, *args):
        if not builtins.any(isinstance(a, ndarray) for a in args):
            return self.func(*args)  # no device array: CuPy calls the Python function itself
        for a in args:
            if not (isinstance(a, ndarray) or _scalar(a) or a is None):
                raise TypeError(f"Invalid argument type for '{self.name}': "
                                f"({', '.join(repr(type(x)) for x in args)})")
        if not _KERNEL_NAME.match(self.name):
            raise ValueError(f'Invalid kernel name: "{self.name}" (CuPy compiles the fused '
                             "function as a CUDA kernel of this name; pass "
                             "cupy.fuse(kernel_name=...))")
        global _fusing
        _fusing += 1
        try:
            out = self.func(*args)
        finally:
            _fusing -= 1
        shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, ndarray)))
        outs = out if isinstance(out, tuple) else (out,)
        fresh = tuple(ndarray._of(_rounded_like_a_gpu(np.array(np.broadcast_to(_operand(o), shape))))
                      for o in outs)
        return fresh if isinstance(out, tuple) else fresh[0]


def fuse(*args, **kwargs):
    if len(args) == 1 and not kwargs and callable(args[0]):
        return Fusion(args[0])
    return lambda f: Fusion(f, kwargs.get("kernel_name"))


# ----- cupy.random -----------------------------------------------------------------------------
_STREAM = 0xC0FFEE  # mixed into every seed: the stand-in's draws are not NumPy's for that seed


def _seeded(seed):
    if seed is None:
        return np.random.default_rng()
    value = np.asarray(seed)
    if value.dtype.kind not in "biu":
        raise TypeError("Seed must be an integer.")
    if not 0 <= int(value) < 2**64:
        raise ValueError("Seed must be an integer between 0 and 2**64 - 1")
    return np.random.default_rng([int(value), _STREAM])


class RandomState:
    """``cupy.random.RandomState``: a seeded generator on the device."""

    def __init__(self, seed=None, method=None):
        self._rng = _seeded(seed)

    def permutation(self, a):
        if isinstance(a, int):
            return ndarray._of(self._rng.permutation(a).astype(np.int64))
        return a[self.permutation(len(a))]

    def rand(self, *size, dtype=float):
        return ndarray._of(self._rng.random(size, dtype=np.dtype(dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return ndarray._of(self._rng.uniform(low, high, size).astype(dtype))

    def standard_normal(self, size=None, dtype=float):
        return ndarray._of(np.asarray(self._rng.standard_normal(size, dtype=np.dtype(dtype))))


class Generator:
    """``cupy.random.default_rng(seed)``'s generator."""

    def __init__(self, seed=None):
        self._rng = _seeded(seed)

    def random(self, size=None, dtype=np.float64, out=None):
        draw = np.asarray(self._rng.random(size, dtype=np.dtype(dtype)))
        if out is not None:
            out[...] = ndarray._of(draw)
            return out
        return ndarray._of(draw)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return ndarray._of(np.asarray(self._rng.integers(low, high, size, dtype, endpoint)))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return ndarray._of(np.asarray(self._rng.standard_normal(size, dtype=np.dtype(dtype))))


random = types.ModuleType("cupy.random")
random.RandomState, random.Generator = RandomState, Generator
random.default_rng = Generator


# ----- cupy.cuda: one pretend device ------------------------------------------------------------
MEMORY = 2 << 30  # what the stand-in's device reports as its memory (gpu_check sizes batches by it)


class _Device:
    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    compute_capability = "00"
    mem_info = property(lambda self: (MEMORY, MEMORY))


class _Stream:
    def synchronize(self):
        pass


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


cuda = types.ModuleType("cupy.cuda")
cuda.Device, cuda.Stream = _Device, _Stream
cuda.Stream.null = _Stream()
cuda.get_device_id = lambda: 0
cuda.runtime = types.ModuleType("cupy.cuda.runtime")
cuda.runtime.getDeviceCount = lambda: 1
cuda.runtime.memGetInfo = lambda: (16 << 30, 16 << 30)  # (free, total) bytes: a 16 GiB card
cuda.runtime.getDeviceProperties = lambda device: {
    "name": b"CuPy stand-in (NumPy on the CPU)", "totalGlobalMem": MEMORY, "major": 0, "minor": 0,
    "multiProcessorCount": 2, "maxThreadsPerMultiProcessor": 2048}
cuda.runtime.driverGetVersion = lambda: 0
cuda.runtime.runtimeGetVersion = lambda: 0
get_default_memory_pool = _MemoryPool
cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = lambda a, slices, value: _at("add", a, slices, value)
cupyx.STANDIN = True


def install():
    """Put the stand-in in ``sys.modules`` as ``cupy`` (with ``cupy.random``, ``cupy.linalg``,
    ``cupy.cuda``, ``cupy.cuda.runtime``) and ``cupyx``, replacing any CuPy imported before."""
    for name in [m for m in sys.modules if m == "cupy" or m.startswith(("cupy.", "cupyx"))]:
        del sys.modules[name]
    me = sys.modules[__name__]
    sys.modules.update({"cupy": me, "cupy.random": random, "cupy.linalg": linalg,
                        "cupy.cuda": cuda, "cupy.cuda.runtime": cuda.runtime, "cupyx": cupyx})
    return me
