"""The fuzz harness's values: valid arguments by parameter name (`pools`) and the bad values each type
admits (`mutations`). See `vaespec.proofs_tests.fuzz.api`."""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from vaespec import impl, reference
from vaespec.impl import vq as impl_vq
from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.conventions import PRESETS
from vaespec.spec.keys import Key

ARCH = Architecture(4, 2, (3,), (3,))
VQ_ARCH = VQArchitecture(4, embedding_dim=2, num_embeddings=5, encoder_sizes=(3,), decoder_sizes=(3,))


@dataclass(frozen=True)
class Bad:
    """A replacement value: `label` for the report, `accept` if a correct API may take it."""

    label: str
    value: object
    accept: bool = False
    relational: bool = False  # breaks agreement with another argument, so another's name may be given


# ----------------------------------------------------------------------------- valid values
def pools() -> dict[str, dict[str, object]]:
    """Valid values by parameter name, per pool (the VAE, VQ, estimators, bayes and quantizers chapters, numpy and
    torch)."""
    rng = np.random.default_rng(0)
    n = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    params, vq_params = reference.init_params(ARCH, 0), reference.init_params(VQ_ARCH, 0)
    vae = {"arch": ARCH, "params": params, "x": n(3, 4), "z": n(3, 2), "eps": n(3, 2), "mu": n(3, 2),
           "log_var": n(3, 2), "x_hat": n(3, 4), "beta": 0.5, "convention": "elbo", "d_mu": n(3, 2),
           "d_log_var": n(3, 2), "d_z": n(3, 2), "d_x_hat": n(3, 4), "d_loss": 1.0, "d_kl": 1.0, "seed": 0,
           "function": "kl_divergence", "name": "relu", "value": "relu", "dtype": "float32", "n": 5, "u": 2.0**-24,
           "n_ops": 2, "checks": 10, "rate": 1e-6, "batch": 3, "sizes": 4, "dim": 2, "codes": 5,
           "embedding_dim": 2, "z_norm": 1.0, "e_norm": 1.0, "term_ulps": 2.0, "terms": (1, 30), "k": Key(3),
           "num": 2, "shape": (3, 2), "high": 4, "key": 7, "input_size": 4, "latent_size": 2,
           "encoder_sizes": (3,), "decoder_sizes": (3,), "activation": "relu", "output_size": 4,
           "part": "all", "convention_name": "elbo"}
    vae["args"] = {"mu": vae["mu"], "log_var": vae["log_var"], "convention": "elbo"}
    vae["cotangent"] = 1.0
    vq = {**vae, "arch": VQ_ARCH, "params": vq_params, "z_e": n(3, 2), "codebook": n(5, 2), "x": n(3, 4),
          "commitment_weight": 0.25, "num_embeddings": 5, "embedding_dim": 2, "ema_counts": np.ones(5),
          "ema_sums": n(5, 2), "ema_step": 3, "decay": 0.99, "epsilon": 1e-5, "training": True,
          "counts": np.arange(5.0), "indices": np.array([0, 4, 4]), "usage": np.array([1, 0, 0, 0, 2]),
          "function": "quantize"}
    vq["args"], vq["cotangent"] = {"z_e": vq["z_e"], "codebook": vq["codebook"]}, n(3, 2)
    est = {**vae, "x_hat": n(3, 4), "x": rng.random((3, 4)), "log_var": n(3, 4), "logits": n(3, 4),
           "log_weights": n(2, 3), "eps": n(2, 3, 2), "decoder_log_var": np.zeros(4), "likelihood": "gaussian",
           "table": n(5, 3), "indices": np.array([0, 4, 1]), "function": "gaussian_log_likelihood"}
    est["args"] = {"x_hat": est["x_hat"], "x": est["x"], "log_var": est["log_var"]}
    est["cotangent"] = np.ones(3)
    bayes = {**vae, "x": n(3, 4), "weight": n(4, 2), "bias": n(4), "noise_log_var": -1.0,
             "function": "linear_gaussian_log_evidence"}
    bayes["args"] = {k: bayes[k] for k in ("x", "weight", "bias", "noise_log_var")}
    bayes["cotangent"] = np.ones(3)
    quant = {**vae, "z": n(3, 3), "levels": np.array([3, 4, 5]), "indices": np.array([0, 5, 7]), "codebook_dim": 3,
             "inv_temperature": 1.0, "diversity_gamma": 1.0, "z_e": n(3, 2), "codebooks": n(2, 4, 2),
             "num_stages": 2, "ema_counts": rng.uniform(0.5, 2.0, (2, 4)), "ema_sums": n(2, 4, 2),
             "ema_step": np.array([3, 0]), "decay": 0.99, "epsilon": 1e-5, "training": True, "function": "fsq_bound"}
    quant["args"], quant["cotangent"] = {"z": quant["z"], "levels": quant["levels"]}, n(3, 3)
    from vaespec.reference import ReferenceBackend

    for pool in (vae, vq, est, bayes, quant):
        pool["backend"] = ReferenceBackend()
    pools = {"vae": vae, "vq": vq, "estimators": est, "bayes": bayes, "quantizers": quant}
    for name in list(pools):
        pools[f"torch-{name}"] = _torch_pool(pools[name])
    return pools


def _torch_pool(pool: dict) -> dict:
    t = {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in pool.items()}
    t.update(reconstruction=t["x_hat"], target=t["x"], tensor=t["mu"], dtype="float64", device="cpu")
    if "indices" in pool:
        t["indices"] = torch.as_tensor(pool["indices"], dtype=torch.int64)
    if "codebook" in pool:
        t["codebook_array"] = pool["codebook"]  # the VQ converters take the spec's numpy codebook
    if "usage" in pool:
        t["usage"] = torch.as_tensor(pool["usage"], dtype=torch.int64)
    arch = pool["arch"]
    if isinstance(arch, VQArchitecture):
        model = impl_vq.from_params(arch, pool["params"], pool["codebook"], torch.float64)
        t.update(model=model, encoder=model.encoder, decoder=model.decoder, quantizer=model.quantizer,
                 reconstruction=torch.as_tensor(pool["x"]), target=torch.as_tensor(pool["x"]))
    else:
        encoder, decoder = impl.from_params(arch, pool["params"], torch.float64)
        t.update(encoder=encoder, decoder=decoder)
    t["likelihood"] = pool.get("likelihood", "gaussian")
    if "log_weights" in pool:  # impl.estimators takes a likelihood callable and [K, B, latent] noise
        t["likelihood"] = lambda x_hat, x: impl.likelihoods.gaussian_log_likelihood(x_hat, x, 0.0, validate=False)
        t["eps"] = torch.as_tensor(pool["eps"])
        t["name"], t["output_size"] = "gaussian", 4
    return t


# ----------------------------------------------------------------------------- bad values
def mutations(value, rng: np.random.Generator, extra: int, default=inspect.Parameter.empty) -> list[Bad]:
    """Bad replacements for a parameter whose valid value is `value` (plus `extra` random ones)."""
    # None is the default convention wherever a convention preset's name is accepted
    common = [Bad("None", None, accept=default is None or isinstance(value, str) and value in PRESETS),
              Bad("a string", "bogus"), Bad("an object", object()), Bad("a list of names", ["loss"])]
    if isinstance(value, np.ndarray):
        return common + _array_mutations(value, rng, extra)
    if isinstance(value, torch.Tensor):
        return common + _tensor_mutations(value, rng, extra)
    if isinstance(value, bool):
        return common + [Bad("the int 1", 1), Bad("numpy bool", np.bool_(True), accept=True)]
    if isinstance(value, Key) or (isinstance(value, int) and not isinstance(value, bool)):
        out = common + [Bad("-1", -1), Bad("0", 0, accept=True), Bad("2**70", 2**70, accept=True),
                        Bad("2**1100", 2**1100, accept=True), Bad("a 10⁴-digit int", 10**10000, accept=True),
                        Bad("1.5", 1.5), Bad("True", True), Bad("numpy int", np.int64(3), True, True),
                        Bad("the string '3'", "3"), Bad("nan", math.nan)]
        out += [Bad(f"random int {v}", int(v), accept=True) for v in rng.integers(-2**40, 2**40, extra)]
        return out
    if isinstance(value, float):
        out = common + [Bad("nan", math.nan), Bad("inf", math.inf), Bad("-inf", -math.inf), Bad("-1.0", -1.0, True),
                        Bad("2**1100", 2**1100, True), Bad("1e308", 1e308, True), Bad("True", True),
                        Bad("complex", 1 + 1j), Bad("0-d array", np.array(value), True),
                        Bad("float16 scalar", np.float16(value), True), Bad("a 1-element list", [value]),
                        Bad("subnormal", 5e-324, True)]
        out += [Bad(f"random {v:.3g}", float(v), True)
                for v in rng.standard_normal(extra) * 10.0 ** rng.integers(-5, 300, extra)]
        return out
    if isinstance(value, str):
        return common + [Bad("unknown name", value + "_x"), Bad("empty name", ""), Bad("upper case", value.upper()),
                         Bad("bytes", value.encode()), Bad("the int 3", 3), Bad("meta device", "meta", True),
                         Bad("xpu device", "xpu", True), Bad("float8", "float8"), Bad("cuda:7", "cuda:7", True)]
    if isinstance(value, tuple):
        return common + [Bad("bytes", b"ab"), Bad("str", "ab"), Bad("negative", (-1,)), Bad("float", (1.5,)),
                         Bad("huge", (2**70,), True), Bad("endless iterator", itertools.count(1)),
                         Bad("empty", (), True), Bad("nested", ((1,),))]
    if isinstance(value, dict):
        first = next(iter(value))
        changed = dict(value)
        changed[first] = "not an array"
        nan = dict(value)
        arr = next((v for v in value.values() if isinstance(v, np.ndarray)), None)
        if arr is not None:
            nan[next(k for k, v in value.items() if v is arr)] = np.full_like(arr, np.nan)
        return common + [Bad("empty mapping", {}), Bad("a list", list(value)), Bad("a non-str key", {**value, 3: 1.0}),
                         Bad("an extra key", {**value, "bogus.kernel": np.zeros(1)}), Bad("a bad entry", changed),
                         Bad("a NaN entry", nan),
                         Bad("missing a key", {k: v for k, v in value.items() if k != first}, accept=True)]
    if isinstance(value, (Architecture, VQArchitecture)):
        other = VQ_ARCH if isinstance(value, Architecture) else ARCH
        return common + [Bad("the other chapter's architecture", other, relational=True),
                         Bad("a smaller architecture",
                             type(value)(5, **({"latent_size": 3} if isinstance(value, Architecture)
                                               else {"embedding_dim": 3})), relational=True),
                         Bad("its dict", value.to_dict())]
    if isinstance(value, torch.nn.Module):
        return common + [Bad("a plain nn.Module", torch.nn.Linear(2, 2)), Bad("the class", type(value))]
    if callable(value):
        return common + [Bad("a NaN function", lambda *a: float("nan"))]
    return common


def _array_mutations(a: np.ndarray, rng, extra: int) -> list[Bad]:
    out = [Bad("a list", a.tolist()), Bad("wrong rank", a[..., None]), Bad("bool dtype", a > 0),
           Bad("complex dtype", a.astype(complex)), Bad("object dtype", a.astype(object)),
           Bad("a torch tensor", torch.as_tensor(a))]
    if a.ndim:
        out += [Bad("empty", a[:0]), Bad("wrong last size", np.concatenate([a, a[..., :1]], axis=-1), relational=True),
                Bad("non-contiguous", np.repeat(a, 2, axis=-1)[..., ::2], True),
                Bad("Fortran order", np.asfortranarray(a), True), Bad("read-only view", _readonly(a), True)]
    if a.dtype.kind == "f":
        index = tuple(int(rng.integers(0, s)) for s in a.shape) if a.ndim else ()
        out += [Bad("NaN", _put(a, index, np.nan)), Bad("Inf", _put(a, index, np.inf)),
                Bad("-Inf", _put(a, index, -np.inf)),
                Bad("masked NaN", np.ma.masked_invalid(_put(a, index, np.nan))), Bad("int dtype", a.astype(np.int64)),
                Bad("float16", a.astype(np.float16), True), Bad("float32", a.astype(np.float32), True),
                Bad("longdouble", a.astype(np.longdouble)), Bad("huge 1e300", a * 1e300, True),
                Bad("1e154", a * 1e154, True), Bad("subnormal", a * 5e-324, True), Bad("zeros", np.zeros_like(a), True)]
        if a.ndim == 2:
            out.append(Bad("numpy.matrix", np.matrix(a)))
        for _ in range(extra):
            scale = float(10.0 ** rng.uniform(-320.0, 308.0))
            out.append(Bad(f"random scale {scale:.2g}", a * scale, True))
            bad = _put(a, tuple(int(rng.integers(0, s)) for s in a.shape), rng.choice([np.nan, np.inf, -np.inf]))
            out.append(Bad("random non-finite entry", bad))
    else:
        out += [Bad("negative", a - a.max() - 1), Bad("out of range", a + 10**6, True),
                Bad("float dtype", a.astype(float)),
                Bad("uint64 huge", np.full(a.shape, 2**63 + 5, dtype=np.uint64), True),
                Bad("masked", np.ma.masked_array(a))]
        out += [Bad("random ints", rng.integers(-10, 10, a.shape), True) for _ in range(extra)]
    return out


def _tensor_mutations(t: torch.Tensor, rng, extra: int) -> list[Bad]:
    out = [Bad("a numpy array", t.numpy()), Bad("wrong rank", t[..., None]), Bad("a list", t.tolist()),
           Bad("complex", t.to(torch.complex128)),
           Bad("meta tensor", torch.empty(t.shape, dtype=t.dtype, device="meta"))]
    if t.dim():
        out += [Bad("empty", t[:0]), Bad("wrong last size", torch.cat([t, t[..., :1]], -1), relational=True),
                Bad("non-contiguous", t.repeat_interleave(2, -1)[..., ::2], True)]
    if t.is_floating_point():
        out += [Bad("NaN", torch.full_like(t, math.nan)), Bad("Inf", torch.full_like(t, math.inf)),
                Bad("int dtype", t.to(torch.int64)), Bad("float32 (dtype mismatch)", t.to(torch.float32), True, True),
                Bad("huge 1e300", t * 1e300, True), Bad("subnormal", t * 5e-324, True)]
        for _ in range(extra):
            out.append(Bad("random scale", t * float(10.0 ** rng.uniform(-320.0, 308.0)), True))
    else:
        out[1] = Bad("wrong rank", t[..., None], True)  # index tensors may have any shape ([batch, fields])
        out += [Bad("negative", t - 100), Bad("out of range", t + 10**6, True), Bad("int32", t.to(torch.int32), True),
                Bad("float", t.to(torch.float64))]
    return out


def _put(a, index, value):
    b = a.astype(np.float64).copy()
    b[index] = value
    return b


def _readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def overrides(pool: dict) -> dict[str, dict]:
    """Valid values for the spec's checking helpers, whose parameters (`name`, `value`) mean something else."""
    return {"check_array": {"name": "x", "value": pool["x"], "dims": ("batch", "input")},
            "as_real_array": {"name": "x", "value": pool["x"], "dims": ("batch", "input")},
            "as_key": {"value": 7}, "vaespec.spec.tolerances.chain_length": {"function": "encode"},
            "vq_chain_length": {"function": "quantize"}, "log_var_limits": {"terms": 30},
            "build_likelihood": {"log_var": 0.0, "name": "gaussian"},
            "vaespec.impl.estimators.log_mean_exp": {"dim": 0},
            "check_scalar": {"name": "beta", "value": 0.5},
            "check_params": {"name": "params", "params": pool["params"], "shapes": pool["arch"].parameter_shapes()},
            "check_result": {"function": "encode", "result": (pool["x"], pool["x"])},
            "from_params": {"codebook": pool.get("codebook_array")},
            "load_params": {"codebook": pool.get("codebook_array")}}


