"""An independent port of the VAE and VQ chapters in a second framework: NumPy (and SciPy's erfc), in
float32 or float64 arithmetic, with gradients from its own small autodiff (`numpy_autodiff.Tape`),
optionally flushing subnormals to zero as XLA on the CPU does.

It is written from the statement (`vaespec.spec`, docs/math.md) alone, imports neither
`vaespec.impl` nor `vaespec.reference`, and differs from both in style: the KL is
½Σ(μ² + σ² − 1 − log σ²) with σ² = e^ℓ, distances are direct differences in the port's dtype, softplus is
`np.logaddexp(y, 0)`, gelu is ½·y·erfc(−y/√2). `flushes_subnormals` declares its FTZ mode
(`vaespec.spec.dtypes`: the laws then accept flushed results wherever the spec allows them).

    vaespec check --backend vaespec.proofs_tests.ports.numpy_port:backends
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import erfc

from vaespec.spec.architecture import ELU_ALPHA, LEAKY_RELU_SLOPE
from vaespec.spec.contract import FUNCTIONS, validate_args
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.conventions import get_convention
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.keys import normal, randint

from .bodies import Bodies
from .numpy_autodiff import Tape, Var

CHAPTERS = ("vae", "vq")
_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _logistic(y):
    """(σ(y), σ(−y)) from e = exp(−|y|), never overflowing."""
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(-np.abs(y))
    big, small = 1 / (1 + e), e / (1 + e)
    return np.where(y >= 0, big, small), np.where(y >= 0, small, big)


def _gelu(y):
    return 0.5 * y * erfc(-y * y.dtype.type(_INV_SQRT2))


def _gelu_derivative(y):
    with np.errstate(under="ignore"):
        return 0.5 * erfc(-y * y.dtype.type(_INV_SQRT2)) + y * np.exp(-0.5 * y * y) * y.dtype.type(_INV_SQRT_2PI)


def _tanh_derivative(y):
    with np.errstate(under="ignore"):
        e = np.exp(-2 * np.abs(y))
    return 4 * e / ((1 + e) * (1 + e))


def _silu_derivative(y):
    s, m = _logistic(y)
    return s * (1 + y * m)


# name -> (value, derivative); derivatives at the kinks as vaespec.spec.dtypes.KINKS states them.
ACTIVATIONS = {
    "relu": (lambda y: np.maximum(y, 0), lambda y: (y > 0).astype(y.dtype)),
    "leaky_relu": (lambda y: np.where(y > 0, y, LEAKY_RELU_SLOPE * y), lambda y: np.where(y > 0, 1, LEAKY_RELU_SLOPE)),
    "elu": (lambda y: np.where(y > 0, y, ELU_ALPHA * np.expm1(np.minimum(y, 0))),
            lambda y: np.where(y > 0, 1, ELU_ALPHA * np.exp(np.minimum(y, 0)))),
    "softplus": (lambda y: np.logaddexp(y, 0), lambda y: _logistic(y)[0]),
    "sigmoid": (lambda y: _logistic(y)[0], lambda y: np.prod(_logistic(y), axis=0)),
    "tanh": (np.tanh, _tanh_derivative),
    "silu": (lambda y: y * _logistic(y)[0], _silu_derivative),
    "gelu": (_gelu, _gelu_derivative),
    "identity": (lambda y: y, np.ones_like),
}


class NumpyPort:
    """The VAE and VQ chapters in NumPy `dtype` ("float32" or "float64"), flushing subnormals when `ftz`."""

    device = "cpu"
    chapters = CHAPTERS
    architectures = ("dense", "conv", "conv_vq")  # the convolutions written here (`numpy_autodiff.Tape.conv2d`)
    key_stream = "vaespec"  # init_codebook and reset_dead_codes draw from vaespec.spec.keys (docs/porting.md §3.6)

    def __init__(self, dtype: str = "float64", ftz: bool = False):
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        self.dtype, self.flushes_subnormals = dtype, bool(ftz)
        self.name = "numpy-ftz" if ftz else "numpy"

    def __repr__(self) -> str:
        return f"NumpyPort(dtype={self.dtype!r}, ftz={self.flushes_subnormals})"

    # ------------------------------------------------------------------------- the network
    def _dense(self, t: Tape, p, name: str, h: Var) -> Var:
        return t.add(t.matmul(h, p[f"{name}.kernel"]), p[f"{name}.bias"])

    def _hidden(self, t, arch, p, layers, h):
        value, derivative = ACTIVATIONS[arch.activation]
        for name, _, _ in layers:
            h = t.unary(self._dense(t, p, name, h), value, derivative)
        return h

    def _conv(self, t, arch, p, name: str, h: Var, transposed: bool = False, one_by_one: bool = False) -> Var:
        """A (transposed) convolution of `arch`'s kernel size, stride and padding (a 1×1 one: stride 1, no
        padding), its bias added per channel."""
        s, pad = (1, 0) if one_by_one else (arch.stride, arch.padding)
        y = (t.conv_transpose2d if transposed else t.conv2d)(h, p[f"{name}.kernel"], s, pad)
        return t.add(y, t.reshape(p[f"{name}.bias"], (1, -1, 1, 1)))

    def _convs(self, t, arch, p, h: Var) -> Var:
        act = ACTIVATIONS[arch.activation]
        for name, _, _ in arch.encoder_convs():
            h = t.unary(self._conv(t, arch, p, name, h), *act)
        return h

    def _deconvs(self, t, arch, p, h: Var) -> Var:
        deconvs = arch.decoder_deconvs()
        for i, (name, _, _) in enumerate(deconvs):
            h = self._conv(t, arch, p, name, h, transposed=True)
            h = t.unary(h, *ACTIVATIONS[arch.activation]) if i < len(deconvs) - 1 else h  # x̂: no activation
        return h

    def _encode(self, t, a):
        arch = a["arch"]
        if isinstance(arch, ConvArchitecture):  # convolutions, then μ and log σ² on the flattened map
            h = self._convs(t, arch, a["params"], a["x"])
            h = t.reshape(h, (h.value.shape[0], -1))
        else:
            h = self._hidden(t, arch, a["params"], arch.encoder_layers(), a["x"])
        return self._dense(t, a["params"], "mu", h), self._dense(t, a["params"], "log_var", h)

    def _decode(self, t, arch, p, z):
        if isinstance(arch, ConvArchitecture):  # the dense layer (activated), unflattened, transposed convolutions
            h = t.unary(self._dense(t, p, "decoder_dense", z), *ACTIVATIONS[arch.activation])
            return self._deconvs(t, arch, p, t.reshape(h, (h.value.shape[0], *arch.feature_shapes()[-1])))
        if isinstance(arch, ConvVQArchitecture):  # z_q [B, H′, W′, E] channels-first, the 1×1 conv, the deconvs
            h = self._conv(t, arch, p, "decoder_from_embedding", t.moveaxis(z, -1, 1), one_by_one=True)
            return self._deconvs(t, arch, p, t.unary(h, *ACTIVATIONS[arch.activation]))
        return self._dense(t, p, "decoder_output", self._hidden(t, arch, p, arch.decoder_layers(), z))

    def _reparameterize(self, t, mu, log_var, eps):
        sigma = t.unary(t.scale(log_var, 0.5), np.exp, np.exp)
        return t.add(mu, t.mul(sigma, eps))

    def _reduce(self, t, v, how, axis):
        return t.sum(v, axis) if how == "sum" else t.mean(v, axis)

    def _reconstruction(self, t, x_hat, x, c):
        c = get_convention(c)
        diff = t.sub(t.reshape(x_hat, (x_hat.value.shape[0], -1)), t.reshape(x, (x.value.shape[0], -1)))
        per = self._reduce(t, t.mul(diff, diff), c.reconstruction_feature_reduction, 1)  # all event entries
        return self._reduce(t, t.scale(per, c.reconstruction_scale), c.reconstruction_batch_reduction, 0)

    def _kl(self, t, mu, log_var, c):
        """½(μ² + σ² − 1 − ℓ) per coordinate with σ² − 1 = expm1(ℓ), reduced as the convention says."""
        c = get_convention(c)
        excess = t.unary(log_var, np.expm1, np.exp)  # σ² − 1
        per = t.scale(t.sub(t.add(t.mul(mu, mu), excess), log_var), 0.5)
        return self._reduce(t, self._reduce(t, per, c.kl_latent_reduction, 1), c.kl_batch_reduction, 0)

    def _sample(self, t, a):
        mu, log_var = self._encode(t, a)
        return mu, log_var, self._reparameterize(t, mu, log_var, a["eps"])

    # ------------------------------------------------------------------------- VQ
    def _nearest(self, z_e: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        """The nearest code of every vector of z_e [B, *positions, D]: indices [B, *positions]."""
        z = z_e.reshape(-1, z_e.shape[-1])
        with np.errstate(under="ignore"):
            d = ((z[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)  # direct differences, in the dtype
        return d.argmin(axis=1).astype(np.int64).reshape(z_e.shape[:-1])  # the first minimum: ties to the lowest

    def _quantize(self, t, z_e, codebook):
        k = self._nearest(z_e.value, codebook.value)
        rows = t.rows(codebook, k)
        return t.add(z_e, t.stop(t.sub(rows, z_e))), k  # straight-through: z_e + sg(e − z_e)

    def _aux(self, t, z_e, codebook, stop_encoder: bool):
        k = self._nearest(z_e.value, codebook.value)
        rows = t.rows(codebook, k)
        diff = t.sub(t.stop(z_e), rows) if stop_encoder else t.sub(z_e, t.stop(rows))
        return t.mean(t.mul(diff, diff), None)

    def _vq_encode(self, t, a):
        arch = a["arch"]
        if isinstance(arch, ConvVQArchitecture):  # convolutions, the 1×1 one to the embedding, channels-last
            h = self._convs(t, arch, a["params"], a["x"])
            return t.moveaxis(self._conv(t, arch, a["params"], "encoder_to_embedding", h, one_by_one=True), 1, -1)
        h = self._hidden(t, arch, a["params"], arch.encoder_layers(), a["x"])
        return self._dense(t, a["params"], "encoder_to_embedding", h)

    def _vq_forward(self, t, a):
        z_q, k = self._quantize(t, self._vq_encode(t, a), a["codebook"])
        return self._decode(t, a["arch"], a["params"], z_q), k

    def _loss(self, t, a):
        x_hat = self._decode(t, a["arch"], a["params"], self._sample(t, a)[2])
        return t.add(self._reconstruction(t, x_hat, a["x"], a["convention"]),
                     t.scale(self._kl(t, *self._encode(t, a), a["convention"]), a["beta"]))

    def _vq_loss(self, t, a):
        z_e = self._vq_encode(t, a)
        z_q, _ = self._quantize(t, z_e, a["codebook"])
        recon = self._reconstruction(t, self._decode(t, a["arch"], a["params"], z_q), a["x"], a["convention"])
        total = t.add(recon, self._aux(t, z_e, a["codebook"], True))
        return t.add(total, t.scale(self._aux(t, z_e, a["codebook"], False), a["commitment_weight"]))

    # ------------------------------------------------------------------------- bodies, by contract name
    _BODIES = Bodies()
    _BODIES.add("encode", lambda s, t, a: s._encode(t, a))
    _BODIES.add("decode", lambda s, t, a: (s._decode(t, a["arch"], a["params"], a["z"]),))
    _BODIES.add("reparameterize", lambda s, t, a: (s._reparameterize(t, a["mu"], a["log_var"], a["eps"]),))
    _BODIES.add("sample_latent", lambda s, t, a: (s._sample(t, a)[2],))
    _BODIES.add("forward", lambda s, t, a: (s._decode(t, a["arch"], a["params"], s._sample(t, a)[2]),))
    _BODIES.add("generate", lambda s, t, a: (s._decode(t, a["arch"], a["params"], a["eps"]),))
    _BODIES.add("reconstruction_loss", lambda s, t, a: (s._reconstruction(t, a["x_hat"], a["x"], a["convention"]),))
    _BODIES.add("kl_divergence", lambda s, t, a: (s._kl(t, a["mu"], a["log_var"], a["convention"]),))
    _BODIES.add("loss", lambda s, t, a: (s._loss(t, a),))
    _BODIES.add("vq_encode", lambda s, t, a: (s._vq_encode(t, a),))
    _BODIES.add("quantize", lambda s, t, a: s._quantize(t, a["z_e"], a["codebook"]))
    _BODIES.add("codebook_loss", lambda s, t, a: (s._aux(t, a["z_e"], a["codebook"], True),))
    _BODIES.add("commitment_loss", lambda s, t, a: (s._aux(t, a["z_e"], a["codebook"], False),))
    _BODIES.add("vq_forward", lambda s, t, a: s._vq_forward(t, a))
    _BODIES.add("vq_loss", lambda s, t, a: (s._vq_loss(t, a),))

    def _inputs(self, function: str, args: Mapping[str, Any]):
        """Checked arguments, arrays as leaves of a fresh tape (read with the tape's DAZ rule)."""
        checked, t = validate_args(function, dict(args)), Tape(self.dtype, self.flushes_subnormals)
        for arg in FUNCTIONS[function].args:
            if arg.kind == "array":
                checked[arg.name] = t.leaf(checked[arg.name])
            elif arg.kind == "params":
                checked[arg.name] = {k: t.leaf(v) for k, v in checked[arg.name].items()}
        return t, checked

    def _call(self, function: str, *args):
        t, a = self._inputs(function, dict(zip((x.name for x in FUNCTIONS[function].args), args)))
        outs = self._BODIES[function](self, t, a)
        values = [o.value.astype(np.float64) if isinstance(o, Var) else np.asarray(o, dtype=np.int64) for o in outs]
        return tuple(values) if len(values) > 1 else values[0]

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
        """Vector-Jacobian product of `function` by the tape's backward pass (`Tape.grad`).

        **Returns** `{argument: gradient}` for each differentiable argument (params: one array per layer), float64.
        """
        if function not in self._BODIES:
            raise ConfigError(f"function: expected one of {sorted(self._BODIES)}, got {function!r}")
        t, a = self._inputs(function, args)
        floats = [o for o in self._BODIES[function](self, t, a) if isinstance(o, Var)]
        given = tuple(cotangent) if len(floats) > 1 else (cotangent,)
        if len(given) != len(floats):
            raise ShapeError(f"cotangent: expected {len(floats)} arrays for {function}'s float outputs, "
                             f"got {len(given)}")
        for out, c in zip(floats, given):
            if np.shape(c) != out.value.shape:
                raise ShapeError(f"cotangent: expected shape {out.value.shape} for {function}, got {np.shape(c)}")
        names = FUNCTIONS[function].differentiable
        leaves = [(n, k, v) for n in names for k, v in (a[n].items() if isinstance(a[n], dict) else [(None, a[n])])]
        grads = t.grad([(o, t.fix(c)) for o, c in zip(floats, given)], [v for _, _, v in leaves])
        result: dict[str, Any] = {}
        for (n, k, _), g in zip(leaves, grads):
            g = np.array(g, dtype=np.float64)
            if k is None:
                result[n] = g
            else:
                result.setdefault(n, {})[k] = g
        return result

    def reparameterize_key(self, mu, log_var, key):
        """`(reparameterize(μ, lv, ε), key′)` with `(ε, key′) = normal(key, μ.shape)`."""
        eps, new_key = normal(key, np.shape(mu))
        return self.reparameterize(mu, log_var, eps), new_key

    # ------------------------------------------------------------------------- the VQ chapter without gradients
    def _f(self, x):
        return Tape(self.dtype, self.flushes_subnormals).fix(x)

    def init_codebook(self, num_embeddings, embedding_dim, key):
        a = validate_args("init_codebook",
                          {"num_embeddings": num_embeddings, "embedding_dim": embedding_dim, "key": key})
        return self._f(normal(a["key"], (a["num_embeddings"], a["embedding_dim"]))[0]).astype(np.float64)

    def laplace_smooth(self, counts, epsilon):
        a = validate_args("laplace_smooth", {"counts": counts, "epsilon": epsilon})
        n, eps = self._f(a["counts"]), self._f(a["epsilon"])
        total = self._f(n.sum())
        return self._f(self._f(self._f(n + eps) / self._f(total + eps * n.shape[0])) * total).astype(np.float64)

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        a = validate_args("ema_update", {"codebook": codebook, "ema_counts": ema_counts, "ema_sums": ema_sums,
                                         "ema_step": ema_step, "z_e": z_e, "decay": decay, "epsilon": epsilon,
                                         "training": training})
        f, c = self._f, self._f(a["codebook"])
        counts, sums = f(a["ema_counts"]), f(a["ema_sums"])
        if not a["training"]:
            return c.astype(np.float64), counts.astype(np.float64), sums.astype(np.float64), a["ema_step"]
        z, g = f(a["z_e"]), f(a["decay"])
        z = z.reshape(-1, z.shape[-1])  # every position's vector
        one_hot = (self._nearest(z, c)[:, None] == np.arange(c.shape[0])[None, :]).astype(z.dtype)
        counts = f(f(g * counts) + f((1 - g) * one_hot.sum(0)))
        sums = f(f(g * sums) + f((1 - g) * f(one_hot.T @ z)))
        debias = f(1 - f(g ** (a["ema_step"] + 1)))
        smoothed = f(self.laplace_smooth(f(counts / debias).astype(np.float64), a["epsilon"]))
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = f(f(sums / debias) / smoothed[:, None])
        new = np.where(smoothed[:, None] > 0, moved, c)
        return new.astype(np.float64), counts.astype(np.float64), sums.astype(np.float64), a["ema_step"] + 1

    def codebook_health(self, indices, num_embeddings):
        a = validate_args("codebook_health", {"indices": indices, "num_embeddings": num_embeddings})
        usage = np.bincount(a["indices"].ravel(), minlength=a["num_embeddings"]).astype(np.int64)
        p = self._f(usage / max(usage.sum(), 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)
        return usage, float(self._f(np.exp(-self._f(terms.sum())))), int((usage == 0).sum())

    def reset_dead_codes(self, codebook, usage, z_e, key):
        a = validate_args("reset_dead_codes", {"codebook": codebook, "usage": usage, "z_e": z_e, "key": key})
        new, dead = self._f(a["codebook"]), np.flatnonzero(a["usage"] == 0)
        vectors = a["z_e"].reshape(-1, a["z_e"].shape[-1])
        rows, new_key = randint(a["key"], vectors.shape[0], (dead.size,))
        new[dead] = self._f(vectors)[rows]
        return new.astype(np.float64), new_key


def _method(function: str):
    def method(self, *args):
        return self._call(function, *args)
    method.__name__ = function
    method.__doc__ = f"`{function}`: {FUNCTIONS[function].formula}"
    return method


for _function in NumpyPort._BODIES:
    setattr(NumpyPort, _function, _method(_function))


def backends() -> list[NumpyPort]:
    """The port in float64 and float32, with subnormals kept and flushed."""
    return [NumpyPort(dtype, ftz) for dtype in ("float64", "float32") for ftz in (False, True)]


__all__ = ["ACTIVATIONS", "CHAPTERS", "NumpyPort", "backends"]
