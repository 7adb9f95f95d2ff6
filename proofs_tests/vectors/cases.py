"""The golden vectors' special cases: inputs that only some strategies reach, fixed (`vaespec vectors export`).

- `{"regime": "kinks" | "reach", "activation": a}` for `encode` and `decode`: the network in the strategies'
  regimes (`strategies.vae.regime_params`): every kink met exactly (integer inputs, the first hidden layer pinned to 0
  at the first row) and every formula switch straddled (`vaespec.spec.dtypes`);
- `{"ties": True}` for `quantize` and `codebook_loss`: small integers with duplicated nearest codes, an exact tie
  in every dtype and every distance form, so the lowest index is the only answer;
- `{"precision": T}` for `quantize`: near ties clear in T and ambiguous in the next narrower dtype
  (`strategies.vq.precision_ties`); the case holds for T and the more precise dtypes only (`case_dtypes`).
Every input stays exact in the dtypes its case holds for.

Appended after every other case (`appended_variants`, so the earlier cases keep their index and files):
- `{"positions": [3]}` for the quantizers chapter: a token sequence z [batch, 3, dim] (besides every chapter's
  image case [batch, 2, 3, dim]);
- `{"num_stages": 2}` for residual VQ: quantizer dropout, 2 of the 3 stages used (the other cases use all 3).
"""

from __future__ import annotations

import numpy as np

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.dtypes import PRECISION_ORDER
from vaespec.spec.shapes import POSITIONS

from ..laws.compare import round_to
from ..strategies.vae import KINKED, SWITCHING
from .manifest import DTYPES

FP16_TINY, FP16_MAX = 2.0**-14, 65504.0
REGIME_FUNCTIONS = ("encode", "decode")
TIE_FUNCTIONS = ("quantize", "codebook_loss")
PRECISION_FUNCTIONS = ("quantize",)


def exact_everywhere(values: np.ndarray) -> np.ndarray:
    """`values` rounded to bfloat16 with |v| < 2⁻¹⁴ set to 0: then exact in all four dtypes."""
    rounded = round_to("bfloat16", np.asarray(values, dtype=np.float64))
    return np.where(np.abs(rounded) < FP16_TINY, 0.0, np.clip(rounded, -FP16_MAX, FP16_MAX))


def special_variants(function: str) -> list[dict]:
    """The special cases of `function` (none for most)."""
    cases: list[dict] = []
    if function in REGIME_FUNCTIONS:
        cases += [{"regime": "kinks", "activation": a} for a in KINKED]
        cases += [{"regime": "reach", "activation": a} for a in SWITCHING]
    if function in TIE_FUNCTIONS:
        cases.append({"ties": True})
    if function in PRECISION_FUNCTIONS:
        cases += [{"precision": dtype} for dtype in PRECISION_ORDER[:2]]
    return cases


SEQUENCE_CASE = (3,)  # the quantizers' token sequence z [batch, 3, dim]
DROPOUT_STAGES = 2  # residual VQ's dropout case: 2 of the vectors' 3 stages


def appended_variants(function: str, first: dict) -> list[dict]:
    """The cases of `function` after all others (each the first case with one change): the quantizers' sequence
    case and residual VQ's dropout case (see the module doc)."""
    spec, cases = FUNCTIONS[function], []
    if spec.chapter == "quantizers" and any(POSITIONS in a.dims for a in spec.args):
        cases.append({**first, "positions": list(SEQUENCE_CASE)})
    if any(a.name == "num_stages" for a in spec.args):
        cases.append({**first, "num_stages": DROPOUT_STAGES})
    return cases


def is_special(variant: dict) -> bool:
    return any(k in variant for k in ("regime", "ties", "precision"))


def case_dtypes(variant: dict) -> list[str]:
    """The dtypes a case holds for: all, or for a precision case its dtype and the more precise ones."""
    if "precision" not in variant:
        return list(DTYPES)
    return list(PRECISION_ORDER[: PRECISION_ORDER.index(variant["precision"]) + 1])


def special_inputs(args: dict, variant: dict, rng) -> bool:
    """Rewrite the drawn `args` for a special `variant`, in place; False when this draw does not qualify."""
    if "regime" in variant:
        _regime(args, variant, rng)
    elif "ties" in variant:
        _ties(args, rng)
    else:
        return _precision(args, variant, rng)
    return True


def _regime(args, variant: dict, rng) -> None:
    """The network in the `kinks` or `reach` regime of the strategies (`strategies.vae.regime_params`), exact
    everywhere; with integer inputs and the first hidden layer's pre-activations pinned to 0 at the first row for
    `kinks`."""
    from ..strategies.vae import pin_kinks, regime_params

    arch = args["arch"]
    args["params"] = {k: exact_everywhere(v) for k, v in
                      regime_params(arch, variant["regime"], int(rng.integers(2**32))).items()}
    if variant["regime"] == "kinks":
        inputs = "x" if "x" in args else "z"
        args[inputs] = rng.integers(-2, 3, args[inputs].shape).astype(np.float64)
        pin_kinks(arch, args["params"], "encoder" if inputs == "x" else "decoder", args[inputs])


def _ties(args, rng) -> None:
    """Small-integer z_e and codebook (entries in [−2, 2]) whose nearest code of each row is duplicated later."""
    codes, dim = args["codebook"].shape
    args["codebook"] = rng.integers(-2, 3, (codes, dim)).astype(np.float64)
    args["z_e"] = rng.integers(-2, 3, args["z_e"].shape).astype(np.float64)
    for b in range(len(args["z_e"])):  # z_e off the rows, so the gradient to the chosen code is not 0
        nearest = int(((args["z_e"][b] - args["codebook"]) ** 2).sum(1).argmin())
        if b + 1 < codes and nearest != codes - 1 - b:
            args["codebook"][codes - 1 - b] = args["codebook"][nearest]


def _precision(args, variant: dict, rng) -> bool:
    """z_e at near ties clear in the variant's dtype and ambiguous in the next narrower one; whether it worked."""
    from vaespec.spec.dtypes import narrower, round_to
    from vaespec.spec.vq import acceptable_codes

    from ..strategies.vq import precision_ties

    level, codebook = variant["precision"], args["codebook"]
    rows = rng.integers(0, len(codebook), len(args["z_e"]))
    z = round_to(level, precision_ties(codebook, rows, [level] * len(rows), rng.choice([-1.0, 1.0], len(rows))))
    args["z_e"] = z
    clear = all(np.all(acceptable_codes(d, z, codebook).sum(1) == 1) for d in case_dtypes(variant))
    return clear and bool(np.all(acceptable_codes(narrower(level), z, codebook).sum(1) > 1))
