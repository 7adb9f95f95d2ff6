"""Hand-written vector-Jacobian products of the VQ chapter (float64).

`<function>_vjp(args, cotangent)` takes the contract's argument mapping (plus an optional
`"indices"` entry: the code choices to condition on, as in `vaespec.reference.vq`) and
returns `{arg: gradient}` for each differentiable argument; parameter gradients cover every
parameter passed (zeros for those the function does not read), as in `gradients.py`.

The stop-gradients of the spec decide where each term flows (`g = 2/(B·D) · (z_e − e_k)`,
the derivative of mean_{b,d} (z_e − e_k)² in z_e):

    quantize          z̄_e = z̄_q  (straight-through z_e + sg(e_k − z_e)),  C̄ = 0
    codebook_loss     z̄_e = 0,   C̄_k = −ȳ · Σ_{b: k(b) = k} g[b]           (scatter-add)
    commitment_loss   z̄_e = ȳ · g,  C̄ = 0
    vq_encode         the dense/activation chain through `encoder_to_embedding`
    vq_forward        decoder backward to z̄_q, then z̄_e = z̄_q (straight-through), encoder backward; C̄ = 0
    vq_loss           reconstruction as vq_forward; the codebook term to C; w · commitment to z_e

Checked against central finite differences of the stop-gradient formulas in
proofs_tests/test_reference_vq.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from vaespec.spec.contract import FUNCTIONS, validate_args
from vaespec.spec.errors import ConfigError, DTypeError, describe
from vaespec.spec.shapes import check_scalar

from . import gradients, mlp, vae, vq
from .activations import get_activation


def _args(function, args):
    """The contract's checks on the arguments of `function`, returned converted (float64) with the extra
    `indices` entry kept (it is checked by `vq._choose`)."""
    if not isinstance(args, Mapping):
        raise DTypeError(f"args: expected a mapping from argument name to value for {function}, got {describe(args)}")
    missing = [a.name for a in FUNCTIONS[function].args if a.name not in args]
    if missing:
        raise ConfigError(f"args: {function} needs {[a.name for a in FUNCTIONS[function].args]}; missing {missing}")
    checked = validate_args(function, {a.name: args[a.name] for a in FUNCTIONS[function].args})
    return {**checked, "indices": args.get("indices")}


def _vq_encode_backward(arch, params, x, d_z_e, grads):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.encoder_layers()]
    h, tape = mlp.hidden_forward(params, names, act, x)
    dh = mlp.dense_backward(params, "encoder_to_embedding", h, d_z_e, grads)
    return mlp.hidden_backward(params, names, act, tape, dh, grads)


def _aux_gradient(z_e, codebook, k, d_loss):
    """d/d z_e of d_loss · mean_{b,d} (z_e − e_k)²."""
    return d_loss * (2.0 / z_e.size) * (z_e - codebook[k])


def _scatter(codebook, k, rows):
    """C̄ with C̄_k = Σ_{b: k(b) = k} rows[b]."""
    out = np.zeros_like(codebook, dtype=np.float64)
    np.add.at(out, k, rows)
    return out


def vq_encode_vjp(args, cotangent):
    """`{"params", "x"}` gradients of `vq_encode` for the cotangent z̄_e [B, embedding]."""
    args = _args("vq_encode", args)
    arch, params, x = args["arch"], args["params"], args["x"]
    vq.vq_encode(arch, params, x)  # the forward's domain (a finite result) is the VJP's
    d_z_e = gradients._cotangent("d_z_e", cotangent, ("batch", "embedding"),
                                 {"batch": x.shape[0], "embedding": arch.embedding_dim})
    grads = gradients._zeros(params)
    return gradients._grads("vq_encode", {"params": grads, "x": _vq_encode_backward(arch, params, x, d_z_e, grads)})


def quantize_vjp(args, cotangent):
    """Straight-through: `{"z_e": z̄_q, "codebook": 0}` for the cotangent z̄_q [B, embedding]."""
    args = _args("quantize", args)
    z_e, codebook = args["z_e"], args["codebook"]
    vq._choose(z_e, codebook, args.get("indices"))  # the value does not depend on it; bad indices are still named
    d_z_q = gradients._cotangent("d_z_q", cotangent, ("batch", "embedding"), {"batch": z_e.shape[0],
                                                                             "embedding": z_e.shape[1]})
    return {"z_e": np.array(d_z_q, dtype=np.float64), "codebook": np.zeros_like(codebook, dtype=np.float64)}


def codebook_loss_vjp(args, cotangent=1.0):
    """`{"z_e": 0, "codebook": −Σ_{b: k(b)=k} ȳ · 2/(B·D) · (z_e[b] − e_k)}` (z_e is stopped)."""
    args = _args("codebook_loss", args)
    z_e, codebook = args["z_e"], args["codebook"]
    k = vq._choose(z_e, codebook, args.get("indices"))
    g = _aux_gradient(z_e, codebook, k, check_scalar("d_loss", cotangent))
    return gradients._grads("codebook_loss", {"z_e": np.zeros_like(z_e, dtype=np.float64),
                                              "codebook": _scatter(codebook, k, -g)})


def commitment_loss_vjp(args, cotangent=1.0):
    """`{"z_e": ȳ · 2/(B·D) · (z_e − e_k), "codebook": 0}` (the codebook is stopped)."""
    args = _args("commitment_loss", args)
    z_e, codebook = args["z_e"], args["codebook"]
    k = vq._choose(z_e, codebook, args.get("indices"))
    g = _aux_gradient(z_e, codebook, k, check_scalar("d_loss", cotangent))
    return gradients._grads("commitment_loss", {"z_e": g, "codebook": np.zeros_like(codebook, dtype=np.float64)})


def _through_decoder(arch, params, codebook, x, indices, d_x_hat, d_z_e_extra=None, d_loss=0.0):
    """Backward of vq_forward (plus the auxiliary terms of vq_loss): (params grads, C̄, x̄ without x's direct term)."""
    grads = gradients._zeros(params)
    z_e = vq._vq_encode(arch, params, x)
    k = vq._choose(z_e, codebook, indices)
    d_z_q = gradients._decode_backward(arch, params, codebook[k], d_x_hat, grads)
    d_codebook = np.zeros_like(codebook, dtype=np.float64)
    d_z_e = d_z_q  # straight-through: the decoder's input gradient reaches z_e unchanged
    if d_z_e_extra is not None:
        g = _aux_gradient(z_e, codebook, k, d_loss)
        d_codebook = _scatter(codebook, k, -g)  # codebook term (weight 1)
        d_z_e = d_z_e + d_z_e_extra * g          # commitment term (weight w)
    return grads, d_codebook, _vq_encode_backward(arch, params, x, d_z_e, grads)


def vq_forward_vjp(args, cotangent):
    """`{"params", "codebook": 0, "x"}` gradients of `vq_forward` for the cotangent x̄̂ [B, output]."""
    args = _args("vq_forward", args)
    arch, params, x = args["arch"], args["params"], args["x"]
    vq.vq_forward(arch, params, args["codebook"], x, indices=args.get("indices"))
    d_x_hat = gradients._cotangent("d_x_hat", cotangent, ("batch", "output"),
                                   {"batch": x.shape[0], "output": arch.output_size})
    grads, d_codebook, dx = _through_decoder(arch, params, args["codebook"], x, args.get("indices"), d_x_hat)
    return gradients._grads("vq_forward", {"params": grads, "codebook": d_codebook, "x": dx})


def vq_loss_vjp(args, cotangent=1.0):
    """`{"params", "codebook", "x"}` gradients of `vq_loss` for the scalar cotangent ȳ."""
    checked = args = _args("vq_loss", args)
    arch, params, codebook, x = args["arch"], args["params"], args["codebook"], args["x"]
    d_loss = check_scalar("d_loss", cotangent)
    vq.vq_loss(arch, params, codebook, x, checked["commitment_weight"], checked["convention"],
               indices=args.get("indices"))
    z_e = vq._vq_encode(arch, params, x)
    k = vq._choose(z_e, codebook, args.get("indices"))
    x_hat = vae._decode(arch, params, codebook[k])[0]
    d_x_hat, d_x_direct = gradients._reconstruction_backward(x_hat, x, checked["convention"], d_loss)
    grads, d_codebook, dx = _through_decoder(arch, params, codebook, x, k, d_x_hat,
                                             checked["commitment_weight"], d_loss)
    return gradients._grads("vq_loss", {"params": grads, "codebook": d_codebook, "x": dx + d_x_direct})


VJPS = {
    "vq_encode": vq_encode_vjp,
    "quantize": quantize_vjp,
    "codebook_loss": codebook_loss_vjp,
    "commitment_loss": commitment_loss_vjp,
    "vq_forward": vq_forward_vjp,
    "vq_loss": vq_loss_vjp,
}
