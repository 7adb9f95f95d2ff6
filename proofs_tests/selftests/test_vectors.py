"""Golden vectors: export is deterministic, small and complete; verify trusts nothing it has not checked
(schema, sizes, sha256, shapes, no pickles) and judges backends by the suite's own tolerance rule."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from vaespec.proofs_tests.cli import main
from vaespec.proofs_tests.controls.vae import NegativeControl
from vaespec.proofs_tests.laws.compare import round_to
from vaespec.proofs_tests.laws.registry import CONTROLS
from vaespec.proofs_tests.laws.tolerance import tolerance
from vaespec.proofs_tests.ports.independent import IndependentPort
from vaespec.proofs_tests.ports.numpy_port import NumpyPort
from vaespec.proofs_tests.vectors import verify as vectors
from vaespec.proofs_tests.vectors.cases import case_dtypes
from vaespec.proofs_tests.vectors.export import clear_margins, export, variants
from vaespec.proofs_tests.vectors.verify import Vectors, VectorsError, schema_errors, verify
from vaespec.spec.architecture import ACTIVATIONS
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conventions import PRESETS
from vaespec.spec.dtypes import FORMULA_SWITCHES, KINKS, narrower
from vaespec.spec.laws import LAWS
from vaespec.spec.vq import acceptable_codes

# Controls whose bug no fixed input of a contract function can show (the laws catch them).
INVISIBLE = {
    "KeyIgnored": "reparameterize_key is an optional method, not a contract function",
    "LogMeanExpWithoutMaxShift": "the vectors' log-weights are moderate; the bug shows only under large shifts",
    "LFQZeroMapsToPlusOne": "the vectors' z has no exact zeros (a case drawn at the kink would need a special case)",
    "LogWeightsTargetChannelsLast": "the vectors' conv image has one channel (CONV_CASE), where channel order is moot",
    "TiesToLastIndexAtPositions": "the vectors' positioned z_e are normal draws, without exact ties (the tie law "
                                  "draws small integers for those)",
    **{name: "the vectors are computed on vaespec's networks; a backend's own network (TinyVAE) meets none of them"
       for name in ("LossForgetsBeta", "ForwardWithoutNoise", "EncoderCentresTheBatch", "DecoderGradientHalved",
                    "SampleDetachedInLoss")},
}


FEW = ["forward", "kl_divergence", "quantize"]  # one function of each kind of case: a network, a VAE loss, a VQ choice


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors") / "v"
    return directory, export(directory, seed=0)


@pytest.fixture(scope="module")
def opened(exported):
    """The export opened once (manifest schema-checked, every file hashed, arrays parsed on first use) for the
    tests that only check backends against it: `Vectors.check` reads it and never writes."""
    return Vectors(exported[0])


@pytest.fixture
def copy(exported, tmp_path):
    """A private copy of the export, for tests that damage it."""
    target = tmp_path / "v"
    shutil.copytree(exported[0], target)
    return target


def _size(directory) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_every_function_has_cases_and_nothing_is_skipped(exported):
    _, manifest = exported
    assert manifest["skipped"] == []
    assert {c["function"] for c in manifest["cases"]} == set(FUNCTIONS)
    assert sum("vjp" in c for c in manifest["cases"]) == sum(
        len(variants(f)) for f, s in FUNCTIONS.items() if s.differentiable)


def test_every_preset_activation_and_flag_appears(exported):
    _, manifest = exported
    for function, spec in FUNCTIONS.items():
        seen = [c["variant"] for c in manifest["cases"] if c["function"] == function]
        if any(a.kind == "convention" for a in spec.args):
            assert {v["preset"] for v in seen} == set(PRESETS), function
        for flag in (a.name for a in spec.args if a.kind == "flag"):
            assert {v[flag] for v in seen} == {True, False}, function
    assert {c["variant"]["activation"] for c in manifest["cases"] if "activation" in c["variant"]} == set(ACTIVATIONS)


def test_export_is_small(exported):
    directory, _ = exported
    assert _size(directory) < 3_000_000, f"{_size(directory)} bytes: the default export should stay a few MB"


def _bounds_resolved(manifest, node):
    """`node` with each tolerance's "bound" (an index into the manifest's own `bounds` list) replaced by that bound."""
    if isinstance(node, dict):
        return {k: manifest["bounds"][v] if k == "bound" else _bounds_resolved(manifest, v) for k, v in node.items()}
    return [_bounds_resolved(manifest, v) for v in node] if isinstance(node, list) else node


def test_export_is_deterministic_and_seeded_and_replaces_an_export_but_nothing_else(exported, tmp_path):
    directory, manifest = exported
    few = export(tmp_path / "v", seed=0, functions=FEW)  # a subset: the full export's files and cases for those
    assert few["files"] == {name: f for name, f in manifest["files"].items() if name.split("/")[1] in FEW}
    assert _bounds_resolved(few, few["cases"]) == _bounds_resolved(
        manifest, [c for c in manifest["cases"] if c["function"] in FEW]) and sorted(few["functions"]) == FEW
    other = export(tmp_path / "v", seed=1, functions=FEW)  # a previous export is replaced; seeded
    assert other["files"].keys() == few["files"].keys() and other["files"] != few["files"]
    again = export(tmp_path / "v", seed=0)  # the same bytes for the same seed
    assert again["files"] == manifest["files"]
    assert (tmp_path / "v" / "manifest.json").read_bytes() == (directory / "manifest.json").read_bytes()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not vectors")
    with pytest.raises(VectorsError, match="mine: not empty"):
        export(tmp_path / "mine")


def test_inputs_are_exact_in_every_dtype(exported):
    directory, manifest = exported
    loaded = Vectors(directory)
    for case in manifest["cases"]:
        for name, value in loaded.args(case).items():
            arrays = value.values() if isinstance(value, dict) else [value]
            for array in arrays:
                if isinstance(array, np.ndarray) and array.dtype.kind == "f":
                    for dtype in case.get("dtypes", vectors.DTYPES):  # a precision case: exact in its dtypes
                        assert np.array_equal(round_to(dtype, array), array), f"{case['id']} {name} in {dtype}"


def test_code_choices_are_clear_for_every_dtype(exported):
    directory, manifest = exported
    loaded = Vectors(directory)
    choosing = [c for c in manifest["cases"] if "codebook" in c["inputs"] and "z_e" in c["inputs"]]
    assert {c["function"] for c in choosing} >= {"quantize", "codebook_loss", "commitment_loss", "ema_update"}
    for case in choosing:
        args = loaded.args(case)
        if "precision" in case["variant"]:  # clear in its dtypes, ambiguous in the next narrower one
            assert case["dtypes"] == case_dtypes(case["variant"]), case["id"]
            for dtype in case["dtypes"]:
                assert np.all(acceptable_codes(dtype, args["z_e"], args["codebook"]).sum(1) == 1), (case["id"], dtype)
            below = narrower(case["variant"]["precision"])
            assert np.all(acceptable_codes(below, args["z_e"], args["codebook"]).sum(1) > 1), case["id"]
        elif "ties" in case["variant"]:  # small integers: exact distances in every dtype, some exactly tied
            assert np.array_equal(args["z_e"], np.round(args["z_e"])) and np.abs(args["codebook"]).max() <= 2
            d = ((args["z_e"][:, None] - args["codebook"][None]) ** 2).sum(-1)
            assert np.any((d == d.min(1, keepdims=True)).sum(1) > 1), case["id"]
        else:
            assert clear_margins(args["z_e"], args["codebook"]), case["id"]
    assert {tuple(c["dtypes"]) for c in choosing if "dtypes" in c} == {("float64",), ("float64", "float32")}


def test_network_cases_meet_every_kink_and_formula_switch(exported):
    """The kinks regime's first hidden layer is exactly 0 at the first row; the reach regime's biases straddle the
    activation's formula switches (`vaespec.spec.dtypes`)."""
    directory, manifest = exported
    loaded, seen = Vectors(directory), set()
    for case in (c for c in manifest["cases"] if "regime" in c["variant"]):
        args, regime = loaded.args(case), case["variant"]["regime"]
        layer = "encoder_dense_0" if case["function"] == "encode" else "decoder_dense_0"
        inputs = args["x"] if case["function"] == "encode" else args["z"]
        pre = inputs @ args["params"][f"{layer}.kernel"] + args["params"][f"{layer}.bias"]
        if regime == "kinks":
            assert np.all(pre[0] == 0), case["id"]
        else:
            switch = min(abs(y) for y, _ in FORMULA_SWITCHES[case["variant"]["activation"]])
            assert np.abs(pre).max() > switch, case["id"]
        seen.add((case["function"], regime, case["variant"]["activation"]))
    assert {a for _, r, a in seen if r == "kinks"} == set(KINKS) - set(FUNCTIONS)  # the activations' kinks
    assert {a for _, r, a in seen if r == "reach"} == {a for a, s in FORMULA_SWITCHES.items() if s}


def test_manifest_matches_its_schema_and_jsonschema_agrees(exported):
    manifest = exported[1]
    schema = json.loads(vectors.SCHEMA.read_text())
    assert schema_errors(manifest, schema) == []
    broken = json.loads(json.dumps(manifest))
    broken["cases"][0]["outputs"][next(iter(broken["cases"][0]["outputs"]))]["tolerance"]["rule"] = "loose"
    del broken["files"][next(iter(broken["files"]))]["sha256"]
    problems = schema_errors(broken, schema)
    assert any("'loose'" in p for p in problems) and any("missing 'sha256'" in p for p in problems), problems
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(manifest))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_recorded_rule_is_the_suites_tolerance(exported, dtype):
    directory, manifest = exported
    loaded, compared = Vectors(directory), 0
    for case in manifest["cases"]:
        entries = [(o.name, case["outputs"][o.name]) for o in FUNCTIONS[case["function"]].outputs]
        if all(e["tolerance"]["rule"] != "bound" for _, e in entries):
            continue  # exact rules are stated separately
        suite = tolerance(dtype, case["function"], loaded.args(case))  # the one the laws call
        suite = suite if len(entries) > 1 else (suite,)
        for (name, entry), expected in zip(entries, suite):
            if entry["tolerance"]["rule"] != "bound":
                continue
            np.testing.assert_allclose(loaded.expected(entry, dtype)[1], expected, rtol=1e-12, err_msg=case["id"])
            compared += 1
    assert compared >= 40


def test_reference_and_independent_ports_pass_the_vectors(exported):
    directory, _ = exported
    ports = [IndependentPort("cpu", "float32"), IndependentPort("cpu", "bfloat16"), NumpyPort("float64"),
             NumpyPort("float32", ftz=True)]
    rows = verify(directory) + verify(directory, ports)
    failed = [r for r in rows if not r.passed]
    assert not failed, failed[0].message
    reference = [r for r in rows if r.backend == "reference"]
    assert {r.function for r in reference} == set(FUNCTIONS) and all(r.verdict == "pass" for r in reference)
    assert all(r.worst_ratio <= 1.0 for r in rows)


# What a control class states about itself, and NegativeControl's generic vjp dispatch to `<function>_vjp`.
_NEUTRAL = {"bug", "caught_by", "name", "chapters", *(n for n in vars(NegativeControl) if not n.startswith("__"))}


def _changed_functions(cls) -> set[str] | None:
    """The contract functions a control's own classes define (a `<function>_vjp` counts as its function), with
    those of the law that catches it; None (every function) when they define anything else (a helper, a module
    builder), which may change any function."""
    own = [k for k in cls.__mro__ if k.__module__.startswith("vaespec.proofs_tests.controls")]
    names = {n.removesuffix("_vjp") if n.removesuffix("_vjp") in FUNCTIONS else n
             for k in own for n in vars(k) if not n.startswith("__")} - _NEUTRAL
    return names | set(LAWS[cls.caught_by].functions) if names <= set(FUNCTIONS) else None


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_negative_controls_fail_the_vectors(opened, name):
    # An invisible control is checked on every function (it must stay invisible); the others on what they change.
    rows = opened.check(CONTROLS[name](), None if name in INVISIBLE else _changed_functions(CONTROLS[name]))
    caught = [r for r in rows if r.verdict == "FAIL"]
    if name in INVISIBLE:
        assert not caught, f"{name} is now caught by the vectors; remove it from INVISIBLE"
    else:
        assert caught, f"negative control {name} ({CONTROLS[name].bug}) passes every golden vector"


def _entry(manifest, function, output):
    case = next(c for c in manifest["cases"] if c["function"] == function)
    return case["outputs"][output]["array"]["file"]


def test_tampered_file_is_named(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    path = copy / _entry(manifest, "loss", "loss")
    value = np.load(path)
    np.save(path, value + 1e-9)  # same size, different bytes
    with pytest.raises(VectorsError, match=rf"{path}: sha256 .* \(tampered or corrupt\)"):
        verify(copy)


def test_truncated_and_missing_files_are_named(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    truncated = copy / _entry(manifest, "quantize", "z_q")
    truncated.write_bytes(truncated.read_bytes()[:50])
    missing = copy / _entry(manifest, "encode", "mu")
    missing.unlink()
    with pytest.raises(VectorsError) as error:
        verify(copy)
    assert f"{missing}: missing" in str(error.value)
    assert f"{truncated}: 50 bytes" in str(error.value)


def test_manifest_that_is_not_json_or_not_the_schema_is_named(copy):
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    (copy / vectors.DIGEST).unlink()  # as a port that edits the manifest would leave it (the digest is tested apart)
    path.write_text(json.dumps({**manifest, "files": []}))
    with pytest.raises(VectorsError,
                       match=rf"{path}: does not match vectors_manifest.schema.json: \$.files: expected object"):
        verify(copy)
    path.write_text('{"format": ')
    with pytest.raises(VectorsError, match=rf"{path}: not readable JSON"):
        verify(copy)
    path.unlink()
    with pytest.raises(VectorsError, match=rf"{path}: missing"):
        verify(copy)


def _rewrite(directory, relative, value, allow_pickle=False):
    """Replace a file and update its checksum, as a careless (or malicious) regeneration would."""
    import hashlib
    path = directory / relative
    np.save(path, value, allow_pickle=allow_pickle)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data = path.read_bytes()
    manifest["files"][relative] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _resign(directory, manifest)
    return path


def _resign(directory, manifest):
    """Write `manifest` and a matching manifest.json.sha256: only a digest the user trusts tells it apart."""
    import hashlib
    data = json.dumps(manifest).encode()
    (directory / "manifest.json").write_bytes(data)
    (directory / vectors.DIGEST).write_text(f"{hashlib.sha256(data).hexdigest()}  manifest.json\n")


def test_pickles_and_wrong_shapes_are_refused_even_with_good_checksums(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    relative = _entry(manifest, "encode", "mu")
    path = _rewrite(copy, relative, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(VectorsError, match=rf"{path}: not a readable .npy file"):
        verify(copy)
    _rewrite(copy, relative, np.zeros((2, 2)))
    with pytest.raises(VectorsError, match=rf"{path}: holds float64 \[2, 2\]"):
        verify(copy)


def test_consistently_altered_expected_value_fails_the_reference(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    relative = _entry(manifest, "kl_divergence", "kl")
    _rewrite(copy, relative, np.load(copy / relative) * (1 + 1e-6))
    rows = verify(copy)
    assert [(r.function, r.kind, r.verdict) for r in rows if not r.passed] == [("kl_divergence", "value", "FAIL")]


def test_command_line(exported, copy, capsys):
    assert main(["vectors", "verify", str(exported[0])]) == 0
    assert "files match their size and sha256" in capsys.readouterr().out
    assert main(["vectors", "verify", str(exported[0]), "--backend",
                 "vaespec.proofs_tests.controls.vae:KLWithoutMinusOne"]) == 1
    assert "FAIL: kl_divergence (value)" in capsys.readouterr().out
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / _entry(manifest, "decode", "x_hat")).write_bytes(b"\x93NUMPY")
    assert main(["vectors", "verify", str(copy)]) == 2
    assert f"{copy / _entry(manifest, 'decode', 'x_hat')}:" in capsys.readouterr().err
    # `vectors export --seed` from the command line: test_vectors_safety's digest test


# ----------------------------------------------------------------------------- declarations (laws.declared)
def _row(rows, function, kind):
    return next(r for r in rows if (r.function, r.kind) == (function, kind))


def test_a_function_the_backend_lacks_is_na_with_the_reason(opened):
    from vaespec.reference.backend import ReferenceBackend

    class WithoutEMA(ReferenceBackend):
        name = "without-ema"
        lacks = ("ema_update",)

        def ema_update(self, *args, **kwargs):
            raise NotImplementedError("not called: the backend declares it lacks ema_update")

    rows = opened.check(WithoutEMA())
    row = _row(rows, "ema_update", "value")
    assert (row.verdict, row.message, row.cases) == ("n/a", "backend does not provide ema_update", 0)
    assert all(r.verdict == "pass" for r in rows if r.function != "ema_update"), [r for r in rows if not r.passed]


@pytest.mark.parametrize("cls", ["TorchWithoutEMADebiasing", "TorchWithoutGaussianConstant",
                                 "TorchWithoutCodebookTerm", "TorchSingleTerm", "TorchOnlySSE"])
def test_declared_variants_and_conventions_change_what_the_vectors_expect(opened, cls):
    """A library variant fails its function's vectors undeclared; declared, the expected values are the
    reference's under the variant (the recorded tolerance unchanged) and it passes; cases in a convention the
    backend does not declare are skipped with the reason."""
    from vaespec.proofs_tests.controls import variants as wrong

    cls = getattr(wrong, cls)
    law = cls.caught_by.removesuffix("_matches_reference")
    function, kind = (law.removesuffix("_gradient"), "gradient") if law.endswith("_gradient") else (law, "value")
    failed = _row(opened.check(cls()), function, kind)
    assert failed.verdict == "FAIL"
    assert re.search(r"\[(convention '\w+'; )?variants: none\]$", failed.message.splitlines()[0]), failed.message
    rows = opened.check(wrong.declared(cls)())
    assert all(r.passed for r in rows), [(r.function, r.kind, r.message[:300]) for r in rows if not r.passed]
    row = _row(rows, function, kind)
    if hasattr(cls, "conventions_declared"):
        assert row.verdict == "n/a" and row.cases == 0, row
        assert "cases skipped (convention '" in row.message and "the backend declares ['sse']" in row.message, row
    else:
        assert row.verdict == "pass" and row.cases > 0, row
