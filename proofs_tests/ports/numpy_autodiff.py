"""A small reverse-mode autodiff in NumPy, in one dtype, with an optional flush-to-zero mode.

The second framework of vaespec's independent ports (`numpy_port.py`): every operation computes in
the tape's dtype (float32 or float64, NumPy's own arithmetic) and records how to pull a cotangent
back. With `ftz=True` the tape emulates what XLA on the CPU and fast-math GPU builds do: every
operand is read with its subnormals as zero (DAZ) and every result below the dtype's smallest
normal is flushed to zero (FTZ), in the forward and the backward pass alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class Var:
    """A value on a tape and the (parent, pullback) pairs that produced it."""

    __slots__ = ("parents", "value")

    def __init__(self, value: np.ndarray, parents: tuple = ()):
        self.value, self.parents = value, parents


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `g` over the axes broadcasting added to reach it from `shape` (the adjoint of broadcasting)."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


class Tape:
    """Operations in `dtype` ("float32" or "float64"); `ftz` flushes subnormal operands and results."""

    def __init__(self, dtype: str, ftz: bool = False):
        self.dtype, self.ftz = np.dtype(dtype), ftz
        self.tiny = np.finfo(self.dtype).tiny

    def fix(self, x) -> np.ndarray:
        """`x` in the tape's dtype, flushed when the tape flushes."""
        x = np.asarray(x, dtype=self.dtype)
        if self.ftz:
            x = np.where(np.abs(x) < self.tiny, np.zeros_like(x), x)
        return x

    def leaf(self, x) -> Var:
        return Var(self.fix(x))

    def _op(self, value, *parents) -> Var:
        return Var(self.fix(value), parents)

    # ------------------------------------------------------------------------- operations
    def add(self, a: Var, b: Var) -> Var:
        return self._op(a.value + b.value, (a, lambda g: _unbroadcast(g, a.value.shape)),
                        (b, lambda g: _unbroadcast(g, b.value.shape)))

    def sub(self, a: Var, b: Var) -> Var:
        return self._op(a.value - b.value, (a, lambda g: _unbroadcast(g, a.value.shape)),
                        (b, lambda g: -_unbroadcast(g, b.value.shape)))

    def mul(self, a: Var, b: Var) -> Var:
        return self._op(a.value * b.value, (a, lambda g: _unbroadcast(self.fix(g * b.value), a.value.shape)),
                        (b, lambda g: _unbroadcast(self.fix(g * a.value), b.value.shape)))

    def scale(self, a: Var, c: float) -> Var:
        c = self.dtype.type(c)
        return self._op(a.value * c, (a, lambda g: g * c))

    def matmul(self, a: Var, b: Var) -> Var:
        return self._op(a.value @ b.value, (a, lambda g: g @ b.value.T), (b, lambda g: a.value.T @ g))

    def unary(self, a: Var, value: Callable, derivative: Callable) -> Var:
        """An elementwise function with its derivative (both evaluated at a's value, in the dtype)."""
        return self._op(value(a.value), (a, lambda g: self.fix(g * self.fix(derivative(a.value)))))

    def reshape(self, a: Var, shape: tuple) -> Var:
        """a viewed in `shape` (exact); its pullback reshapes back."""
        return self._op(a.value.reshape(shape), (a, lambda g: np.reshape(g, a.value.shape)))

    def sum(self, a: Var, axis: int) -> Var:
        return self._op(a.value.sum(axis=axis), (a, lambda g: np.broadcast_to(np.expand_dims(g, axis), a.value.shape)))

    def mean(self, a: Var, axis: int | None) -> Var:
        n = a.value.size if axis is None else a.value.shape[axis]
        value = a.value.mean() if axis is None else a.value.mean(axis=axis)
        grow = (lambda g: np.broadcast_to(g, a.value.shape)) if axis is None else (
            lambda g: np.broadcast_to(np.expand_dims(g, axis), a.value.shape))
        return self._op(value, (a, lambda g: self.fix(grow(g) / self.dtype.type(n))))

    def rows(self, a: Var, index: np.ndarray) -> Var:
        """a[index] (a gather); its pullback scatters-adds into the selected rows."""
        def pull(g):
            out = np.zeros_like(a.value)
            np.add.at(out, index, g)
            return out
        return self._op(a.value[index], (a, pull))

    def conv2d(self, x: Var, kernel: Var, stride: int, padding: int) -> Var:
        """The cross-correlation y[b,o,i,j] = Σ_{c,p,q} x̃[b,c,s·i+p,s·j+q]·K[p,q,c,o] (x̃: x zero-padded by p,
        K [k, k, in, out]); its pullbacks K̄ = Σ windows ⊗ ȳ and x̄ = the windows' scatter of ȳ·Kᵀ, cropped."""
        k, s, p = kernel.value.shape[0], stride, padding
        padded = np.pad(x.value, ((0, 0), (0, 0), (p, p), (p, p)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        out_h, out_w = windows.shape[2], windows.shape[3]

        def pull_x(g):
            grown = np.zeros_like(padded)
            for i in range(k):
                for j in range(k):
                    grown[:, :, i:i + s * out_h:s, j:j + s * out_w:s] += np.einsum("bohw,co->bchw", g,
                                                                                   kernel.value[i, j])
            return grown[:, :, p:grown.shape[2] - p, p:grown.shape[3] - p]

        return self._op(np.einsum("bchwpq,pqco->bohw", windows, kernel.value), (x, pull_x),
                        (kernel, lambda g: np.einsum("bchwpq,bohw->pqco", windows, g)))

    def conv_transpose2d(self, x: Var, kernel: Var, stride: int, padding: int) -> Var:
        """The transposed convolution ỹ[b,o,s·i+p,s·j+q] += Σ_c x[b,c,i,j]·K[p,q,c,o], cropped by the padding on
        each side (the adjoint of `conv2d` in x); its pullbacks read ȳ zero-padded back at the same windows."""
        k, s, p = kernel.value.shape[0], stride, padding
        batch, _, h, w = x.value.shape
        full = np.zeros((batch, kernel.value.shape[3], (h - 1) * s + k, (w - 1) * s + k), dtype=self.dtype)
        for i in range(k):
            for j in range(k):
                full[:, :, i:i + s * h:s, j:j + s * w:s] += np.einsum("bchw,co->bohw", x.value, kernel.value[i, j])

        def taps(g):
            return np.pad(g, ((0, 0), (0, 0), (p, p), (p, p)))

        def pull_x(g):
            g = taps(g)
            return sum(np.einsum("bohw,co->bchw", g[:, :, i:i + s * h:s, j:j + s * w:s], kernel.value[i, j])
                       for i in range(k) for j in range(k))

        def pull_kernel(g):
            g = taps(g)
            return np.stack([np.stack([np.einsum("bchw,bohw->co", x.value, g[:, :, i:i + s * h:s, j:j + s * w:s])
                                       for j in range(k)]) for i in range(k)])

        return self._op(full[:, :, p:full.shape[2] - p, p:full.shape[3] - p], (x, pull_x), (kernel, pull_kernel))

    def moveaxis(self, a: Var, source: int, destination: int) -> Var:
        """a with one axis moved (exact); its pullback moves it back."""
        return self._op(np.moveaxis(a.value, source, destination),
                        (a, lambda g: np.moveaxis(g, destination, source)))

    def stop(self, a: Var) -> Var:
        """The value of `a` with no gradient (stop-gradient)."""
        return Var(a.value)

    # ------------------------------------------------------------------------- backward
    def grad(self, outputs: list[tuple[Var, np.ndarray]], wrt: list[Var]) -> list[np.ndarray]:
        """The vector-Jacobian product: Σ over `outputs` of cotangentᵀ·∂output/∂w, for each w in `wrt`."""
        order, seen = [], set()

        def visit(v):
            if id(v) in seen:
                return
            seen.add(id(v))
            for parent, _ in v.parents:
                visit(parent)
            order.append(v)

        for out, _ in outputs:
            visit(out)
        grads: dict[int, np.ndarray] = {}
        for out, cotangent in outputs:
            grads[id(out)] = grads.get(id(out), 0) + self.fix(np.broadcast_to(cotangent, out.value.shape))
        for v in reversed(order):
            g = grads.get(id(v))
            if g is None:
                continue
            for parent, pull in v.parents:
                grads[id(parent)] = self.fix(grads.get(id(parent), 0) + self.fix(pull(g)))
        return [self.fix(np.broadcast_to(grads.get(id(w), 0), w.value.shape)) for w in wrt]
