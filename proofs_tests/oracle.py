"""A high-precision oracle for the float64 reference: its functions in mpmath at `DIGITS` digits.

Each `Target` pairs a float64 function of the reference with its exact value, written from the
spec's formula (docs/math.md) in a form that mpmath evaluates without cancellation — so at 60
significant digits the oracle is exact to far below one float64 ulp (`selftests/test_oracle.py` checks it
against a second evaluation at twice the digits). `measure(target, samples)` reports the
reference's worst error in **ulps**:

- of the exact result, for the functions a careful float64 formula gets right everywhere;
- of the **magnitude** M (the same sum of absolute values the tolerance policy scales), where
  the exact result is a sum whose terms cancel for some inputs (μ + σε, a log-density, gelu′
  and silu′ at their zeros): no float64 evaluation of such a sum is accurate relative to its
  result without extended-precision transcendentals, and its condition number is M/|result|.

The target is `REFERENCE_ULPS` (2) elementwise, plus whatever the C library's erfc loses beyond
`PRIMITIVE_ULPS` at the very argument the reference passes it (gelu only; measured per sample,
not assumed). Reductions are held to `sum_ulps`, the error model of a float64 sum of n terms.
Outputs in the subnormal range have fewer than 53 significant bits and are sampled out; the
extreme-value tests bound them absolutely. `vaespec fidelity` prints the table (docs/numerics.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np

from vaespec.reference import kl_divergence, reconstruction_loss
from vaespec.reference.activations import ACTIVATION_FUNCTIONS, INV_SQRT2
from vaespec.reference.elementwise import gaussian_log_density, squared_difference, standard_normal_kl
from vaespec.reference.estimators import gaussian_log_likelihood
from vaespec.reference.losses import kl_backward
from vaespec.reference.vae import reparameterize
from vaespec.reference.vq import squared_distances
from vaespec.spec.conventions import PRESETS, get_convention
from vaespec.spec.tolerances import PRIMITIVE_ULPS, REFERENCE_ULPS, sum_ulps

DIGITS = 60
mpf = mpmath.mpf
_erfc = np.frompyfunc(math.erfc, 1, 1)


# ----------------------------------------------------------------------------- ulps
def ulp(x) -> mpf:
    """The float64 unit in the last place at the exact value x: 2^(e − 52) for 2^e ≤ |x| < 2^(e+1),
    and 2⁻¹⁰⁷⁴ (the subnormal spacing) below the normal range."""
    if x == 0:
        return mpf(2) ** -1074
    _, e = mpmath.frexp(x)  # |x| = m·2^e, ½ ≤ m < 1
    return mpf(2) ** max(int(e) - 53, -1074)


def ulps(computed: float, exact, scale=None) -> float:
    """|computed − exact| in units of ulp(scale) (scale defaults to the exact value itself)."""
    return float(abs(mpf(float(computed)) - exact) / ulp(exact if scale is None else scale))


# ----------------------------------------------------------------------------- exact functions
def _sigmoid(y):
    return 1 / (1 + mpmath.exp(-y))


def _sigmoid_derivative(y):  # σ(y)σ(−y) = e^{−|y|}/(1 + e^{−|y|})², no 1 − σ
    e = mpmath.exp(-abs(y))
    return e / (1 + e) ** 2


def _cdf(y):  # Φ(y) = ½ erfc(−y/√2): erf's form loses every digit where Φ is tiny
    return mpmath.erfc(-y / mpmath.sqrt(2)) / 2


def _pdf(y):
    return mpmath.exp(-y * y / 2) / mpmath.sqrt(2 * mpmath.pi)


def expm1_minus_identity(x):  # e^x − 1 − x, by its series where expm1(x) − x would cancel digits
    if abs(x) < mpf("1e-3"):
        return mpmath.fsum(x ** k / mpmath.factorial(k) for k in range(2, 40))
    return mpmath.expm1(x) - x


_LEAKY = mpf("0.01")  # the spec's slope 0.01, not its nearest double
EXACT_ACTIVATIONS: dict[str, tuple[Callable, Callable, Callable | None]] = {
    # name: (value, derivative, magnitude of the derivative's sum where it has a zero)
    "relu": (lambda y: max(y, 0), lambda y: mpf(1 if y > 0 else 0), None),
    "gelu": (lambda y: y * _cdf(y), lambda y: _cdf(y) + y * _pdf(y), lambda y: _cdf(y) + abs(y) * _pdf(y)),
    "silu": (lambda y: y * _sigmoid(y), lambda y: _sigmoid(y) * (1 + y * _sigmoid(-y)),
             lambda y: _sigmoid(y) * (1 + abs(y) * _sigmoid(-y))),
    "tanh": (mpmath.tanh, lambda y: mpmath.sech(y) ** 2, None),
    "sigmoid": (_sigmoid, _sigmoid_derivative, None),
    "elu": (lambda y: y if y > 0 else mpmath.expm1(y), lambda y: mpf(1) if y > 0 else mpmath.exp(y), None),
    "leaky_relu": (lambda y: y if y > 0 else _LEAKY * y, lambda y: mpf(1) if y > 0 else _LEAKY, None),
    "softplus": (lambda y: mpmath.log1p(mpmath.exp(y)), _sigmoid, None),
    "identity": (lambda y: y, lambda y: mpf(1), None),
}


def _erfc_excess(y):
    """Absolute error of the C library's erfc beyond PRIMITIVE_ULPS at the argument the reference's
    Φ(y) passes it (t = fl(−y · fl(1/√2))), as a fraction of erfc(t)."""
    t = float(np.float64(-y) * INV_SQRT2[0])
    exact = mpmath.erfc(mpf(t))
    return max(mpf(0), abs(mpf(math.erfc(t)) - exact) - PRIMITIVE_ULPS * ulp(exact)) / exact


# ----------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """One reference function under the oracle.

    `reference(*arrays)` is the float64 code under test; `exact(*mpf) -> mpf` its value per element
    (`elementwise`) or `exact(*arrays) -> [mpf]` per output entry (`reduction`, with `chain(*arrays)`
    the rounding-chain length of each output and `magnitude` per entry). `magnitude(*mpf)` switches
    the measure to ulps of M; `libm(*mpf)` is an absolute allowance for a C-library primitive's
    excess at that sample; `sample(rng, n)` draws n inputs (a tuple of arrays, or a list of tuples
    for reductions) from the function's float64 domain.
    """

    name: str
    kind: str
    reference: Callable
    exact: Callable
    sample: Callable
    magnitude: Callable | None = None
    libm: Callable | None = None
    chain: Callable | None = None
    domain: str = ""


def _signed_logs(rng, n, low, high, zero_fraction=0.0):
    """n values with |v| log-uniform in [10^low, 10^high], random signs, a fraction exactly 0."""
    v = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(low, high, n)
    return np.where(rng.random(n) < zero_fraction, 0.0, v)


def _activation_sample(low, high):
    def sample(rng, n):
        k = n // 3
        y = np.concatenate([_signed_logs(rng, n - 2 * k, -12, math.log10(max(abs(low), high))),
                            rng.uniform(-4.0, 4.0, k), rng.uniform(low, high, k), [0.0]])
        return (np.clip(y, low, high),)
    return sample


# Input ranges whose outputs are normal floats (gelu underflows below −37.6; 4σ′(2y) and e^y near −708).
_ACTIVATION_RANGE = {"gelu": (-37.0, 40.0), "silu": (-700.0, 700.0), "sigmoid": (-700.0, 700.0),
                     "softplus": (-700.0, 700.0), "tanh": (-350.0, 350.0), "elu": (-700.0, 700.0)}


def _activation_targets() -> list[Target]:
    targets = []
    for name, (value, derivative, derivative_magnitude) in EXACT_ACTIVATIONS.items():
        act = ACTIVATION_FUNCTIONS[name]
        low, high = _ACTIVATION_RANGE.get(name, (-1e6, 1e6))
        domain = f"{low:g} ≤ y ≤ {high:g}"
        libm = (lambda y: abs(y) / 2 * _erfc_excess(y) * 2 * _cdf(y)) if name == "gelu" else None
        targets.append(Target(f"{name}", "elementwise", act.value, value, _activation_sample(low, high),
                              libm=libm, domain=domain))
        libm = (lambda y: _erfc_excess(y) * _cdf(y)) if name == "gelu" else None
        targets.append(Target(f"{name}′", "elementwise", act.derivative, derivative, _activation_sample(low, high),
                              magnitude=derivative_magnitude, libm=libm, domain=domain))
    return targets


def _kl_sample(rng, n):
    lv = _signed_logs(rng, n, -150, math.log10(700.0))
    lv[: n // 4] = rng.uniform(-3.0, 4.0, n // 4)  # where the series and the two closed forms meet
    return _signed_logs(rng, n, -150, 150, zero_fraction=0.5), lv


def _latent_sample(rng, n):
    mu = _signed_logs(rng, n, -10, 10, zero_fraction=0.1)
    lv = rng.uniform(-700.0, 700.0, n)
    lv[: n // 2] = rng.uniform(-20.0, 20.0, n // 2)
    eps = rng.standard_normal(n) * 2
    # half the draws put μ at −σε to within a few ulps: the sum cancels (conditioning, not error)
    cancel = rng.random(n) < 0.5
    mu = np.where(cancel, -np.exp(0.5 * lv) * eps * (1 + rng.integers(-4, 5, n) * 2.0**-52), mu)
    return mu, lv, eps


def _pair_sample(rng, n):
    a = _signed_logs(rng, n, -100, 100)
    near = a * (1 + rng.uniform(-1e-6, 1e-6, n))
    return a, np.where(rng.random(n) < 0.5, near, _signed_logs(rng, n, -100, 100))


def _density_sample(rng, n):
    x_hat, x = _signed_logs(rng, n, -10, 10), _signed_logs(rng, n, -10, 10)
    x = np.where(rng.random(n) < 0.5, x_hat * (1 + rng.uniform(-1e-6, 1e-6, n)), x)
    lv = np.where(rng.random(n) < 0.5, rng.uniform(-600.0, 600.0, n), rng.uniform(-5.0, 5.0, n))
    # keep (x − x̂)²·e^{−ℓ} ≤ e^{680}: the density stays finite
    with np.errstate(divide="ignore"):
        return x_hat, x, np.maximum(lv, 2 * np.log(np.abs(x - x_hat)) - 680.0)


def _log_density(x_hat, x, lv):
    return -(mpmath.log(2 * mpmath.pi) + lv + (x - x_hat) ** 2 * mpmath.exp(-lv)) / 2


def _log_density_magnitude(x_hat, x, lv):
    return (mpmath.log(2 * mpmath.pi) + abs(lv) + (x - x_hat) ** 2 * mpmath.exp(-lv)) / 2


_SUM = get_convention("sum")


def _elementwise_targets() -> list[Target]:
    return [
        Target("kl_per_coordinate", "elementwise", standard_normal_kl,
               lambda mu, lv: (expm1_minus_identity(lv) + mu * mu) / 2, _kl_sample,
               domain="|μ| ≤ 1e150, |lv| ≤ 700 (float64's log-variance domain)"),
        Target("kl_divergence_vjp (∂/∂lv)", "elementwise",
               lambda lv: kl_backward(np.zeros((1, lv.size)), lv[None, :], _SUM, 1.0)[1][0],
               lambda lv: mpmath.expm1(lv) / 2, lambda rng, n: (_signed_logs(rng, n, -300, math.log10(700.0)),),
               domain="|lv| ≤ 700"),
        Target("reparameterize", "elementwise",
               lambda mu, lv, eps: reparameterize(mu[:, None], lv[:, None], eps[:, None])[:, 0],
               lambda mu, lv, eps: mu + mpmath.exp(lv / 2) * eps, _latent_sample,
               magnitude=lambda mu, lv, eps: abs(mu) + mpmath.exp(lv / 2) * abs(eps),
               domain="|lv| ≤ 700, half the draws with μ ≈ −σε"),
        Target("squared_difference (x̂ − x)²", "elementwise", squared_difference, lambda a, b: (a - b) ** 2,
               _pair_sample, domain="|x̂|, |x| ≤ 1e100, half the pairs within 1e-6 relative"),
        Target("gaussian_log_density", "elementwise", lambda x_hat, x, lv: gaussian_log_density(x, x_hat, lv),
               _log_density, _density_sample, magnitude=_log_density_magnitude,
               domain="|x̂|, |x| ≤ 1e10, |ℓ| ≤ 600, (x − x̂)²e^{−ℓ} ≤ e^{680}"),
        Target("gaussian_log_likelihood (one feature)", "elementwise",
               lambda x_hat, x, lv: gaussian_log_likelihood(x_hat[:, None], x[:, None], lv[:, None]),
               _log_density, _density_sample, magnitude=_log_density_magnitude,
               domain="as gaussian_log_density (vaespec.reference.estimators, D = 1)"),
    ]


def _shapes(rng, n, max_rows=24, max_cols=48):
    return [(int(rng.integers(1, max_rows + 1)), int(rng.integers(1, max_cols + 1))) for _ in range(n)]


def _reduction_targets() -> list[Target]:
    def mse_sample(rng, n):
        return [(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 3), rng.standard_normal(s), PRESETS[c])
                for s, c in zip(_shapes(rng, n), rng.choice(sorted(PRESETS), n))]

    def kl_sample(rng, n):
        return [(rng.standard_normal(s) * 3, rng.uniform(-20, 20, s), PRESETS[c])
                for s, c in zip(_shapes(rng, n), rng.choice(sorted(PRESETS), n))]

    def vq_sample(rng, n):
        out = []
        for rows, dim in _shapes(rng, n, 16, 64):
            z = rng.standard_normal((rows, dim)) * 10.0 ** rng.uniform(-2, 3)
            codes = np.concatenate([z[: max(1, rows // 2)] + rng.standard_normal((max(1, rows // 2), dim)) * 1e-3,
                                    rng.standard_normal((3, dim))])
            out.append((z, codes))
        return out

    def density_sample(rng, n):
        return [(rng.standard_normal(s), rng.standard_normal(s), rng.uniform(-4, 4, s)) for s in _shapes(rng, n)]

    def means(c, *how):  # each mean adds one rounding (the division)
        return sum(1 for h in how if h == "mean")

    def mse_exact(x_hat, x, c):
        rows = [mpmath.fsum((mpf(a) - mpf(b)) ** 2 for a, b in zip(ra, rb)) for ra, rb in zip(x_hat, x)]
        per = [mpf(c.reconstruction_scale) * r / (x.shape[1] if c.reconstruction_feature_reduction == "mean" else 1)
               for r in rows]
        return [mpmath.fsum(per) / (x.shape[0] if c.reconstruction_batch_reduction == "mean" else 1)]

    def kl_exact(mu, lv, c):
        rows = [mpmath.fsum((expm1_minus_identity(mpf(b)) + mpf(a) ** 2) / 2 for a, b in zip(ra, rb))
                / (mu.shape[1] if c.kl_latent_reduction == "mean" else 1) for ra, rb in zip(mu, lv)]
        return [mpmath.fsum(rows) / (mu.shape[0] if c.kl_batch_reduction == "mean" else 1)]

    def vq_exact(z, codes):
        return [mpmath.fsum((mpf(a) - mpf(b)) ** 2 for a, b in zip(row, code)) for row in z for code in codes]

    def density_terms(x_hat, x, lv):
        return [[(mpf(a), mpf(b), mpf(c)) for a, b, c in zip(*rows)] for rows in zip(x_hat, x, lv)]

    return [
        Target("reconstruction_loss", "reduction", reconstruction_loss, mse_exact, mse_sample,
               chain=lambda x_hat, x, c: x.shape[0] + x.shape[1] - 1 + means(c, c.reconstruction_feature_reduction,
                                                                           c.reconstruction_batch_reduction),
               domain="B ≤ 24, D ≤ 48, every convention"),
        Target("kl_divergence", "reduction", kl_divergence, kl_exact, kl_sample,
               chain=lambda mu, lv, c: mu.shape[0] + mu.shape[1] - 2 + means(c, c.kl_latent_reduction,
                                                                           c.kl_batch_reduction),
               domain="B ≤ 24, L ≤ 48, |lv| ≤ 20, every convention"),
        Target("squared_distances (VQ)", "reduction", squared_distances, vq_exact, vq_sample,
               chain=lambda z, codes: z.shape[1] - 1, domain="B ≤ 16, D ≤ 64, codes within 1e-3 of z"),
        Target("gaussian_log_likelihood", "reduction", gaussian_log_likelihood,
               lambda x_hat, x, lv: [mpmath.fsum(_log_density(*t) for t in row) for row in density_terms(x_hat, x, lv)],
               density_sample,
               magnitude=lambda x_hat, x, lv: [mpmath.fsum(_log_density_magnitude(*t) for t in row)
                                               for row in density_terms(x_hat, x, lv)],
               chain=lambda x_hat, x, lv: x.shape[1] - 1, domain="B ≤ 24, D ≤ 48, |ℓ| ≤ 4"),
    ]


def targets() -> dict[str, Target]:
    """Every reference function the oracle measures, by name."""
    return {t.name: t for t in (*_activation_targets(), *_elementwise_targets(), *_reduction_targets())}


# ----------------------------------------------------------------------------- measuring
@dataclass
class Measurement:
    """The worst error of one target over its samples, in ulps (of the result, or of M).

    `unexplained` excludes what a C-library primitive lost beyond PRIMITIVE_ULPS at the sample
    (gelu's erfc); `ratio` is the largest unexplained / target over the samples (≤ 1 passes), and
    `target` the ulps allowed at that sample: REFERENCE_ULPS elementwise, `sum_ulps` for reductions.
    """

    name: str
    kind: str
    measure: str  # "result" or "magnitude"
    samples: int
    worst: float
    unexplained: float
    target: float
    ratio: float
    worst_at: tuple
    domain: str

    @property
    def passed(self) -> bool:
        return self.ratio <= 1.0

    def to_dict(self) -> dict:
        fields = ("name", "kind", "measure", "samples", "worst", "unexplained", "target", "ratio", "domain")
        return {k: getattr(self, k) for k in fields} | {"worst_at": [repr(v) for v in self.worst_at],
                                                         "passed": self.passed}


def _measure_elementwise(target: Target, args: tuple) -> Measurement:
    got = np.asarray(target.reference(*args), dtype=np.float64).reshape(-1)
    worst, unexplained, at = 0.0, 0.0, ()
    for i in range(got.size):
        point = tuple(mpf(float(a[i])) for a in args)
        exact = target.exact(*point)
        scale = ulp(target.magnitude(*point) if target.magnitude else exact)
        error = abs(mpf(float(got[i])) - exact)
        allowance = target.libm(*point) if target.libm else 0
        e, b = float(error / scale), float(max(0, error - allowance) / scale)
        if b > unexplained or not at:
            at = tuple(float(a[i]) for a in args)
        worst, unexplained = max(worst, e), max(unexplained, b)
    return Measurement(target.name, "elementwise", "magnitude" if target.magnitude else "result", got.size, worst,
                       unexplained, REFERENCE_ULPS, unexplained / REFERENCE_ULPS, at, target.domain)


def _measure_reduction(target: Target, cases: list) -> Measurement:
    worst, ratio, at, allowed, at_error = 0.0, -1.0, (), 0.0, 0.0
    for case in cases:
        got = np.asarray(target.reference(*case), dtype=np.float64).reshape(-1)
        exact = target.exact(*case)
        scales = target.magnitude(*case) if target.magnitude else exact
        bound = sum_ulps(target.chain(*case))
        for g, x, s in zip(got, exact, scales):
            e = float(abs(mpf(float(g)) - x) / ulp(abs(s)))
            if e / bound > ratio:
                ratio, allowed, at_error = e / bound, bound, e
                at = tuple(a.shape for a in case if isinstance(a, np.ndarray)) + tuple(
                    a.name for a in case if not isinstance(a, np.ndarray))
            worst = max(worst, e)
    return Measurement(target.name, "reduction", "magnitude" if target.magnitude else "result", len(cases), worst,
                       at_error, allowed, ratio, at, target.domain)


def measure(target: Target, samples: int, seed: int = 0) -> Measurement:
    """The reference's worst error on `samples` draws of `target`'s domain (fixed `seed`)."""
    rng = np.random.default_rng(seed)
    with mpmath.workdps(DIGITS), np.errstate(all="ignore"):
        drawn = target.sample(rng, samples)
        if target.kind == "elementwise":
            return _measure_elementwise(target, drawn)
        return _measure_reduction(target, drawn)


PRIMITIVES: dict[str, tuple[Callable, Callable, tuple[float, float]]] = {
    # the C-library functions the reference calls, on the ranges it calls them
    "exp": (np.exp, mpmath.exp, (-700.0, 700.0)),
    "expm1": (np.expm1, mpmath.expm1, (-700.0, 700.0)),
    "log1p": (np.log1p, mpmath.log1p, (0.0, 1.0)),
    "tanh": (np.tanh, mpmath.tanh, (-20.0, 20.0)),
    "erfc": (lambda t: _erfc(t).astype(np.float64), mpmath.erfc, (-4.0, 26.0)),
}


def measure_primitive(name: str, samples: int, seed: int = 0) -> float:
    """Worst ulps of the C-library primitive `name` over its range (for the report; not a target)."""
    function, exact, (low, high) = PRIMITIVES[name]
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, samples)
    with mpmath.workdps(DIGITS):
        return max(ulps(v, exact(mpf(float(a)))) for v, a in zip(function(x), x))
