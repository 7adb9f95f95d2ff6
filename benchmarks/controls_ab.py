"""Every negative control through the law that names it, ci profile, shrinking on: verdict, examples, worst
ratio and the (shrunk) failure message as JSON, for comparing two checkouts.

    /work/wt/base/.venv/bin/python -m benchmarks.controls_ab before.json      # run_law alone (before issue 12)
    .venv/bin/python -m benchmarks.controls_ab after.json                     # run_laws over [control, Torch float64]

After issue 12 each control shares its law's run with a passing `TorchBackend` float64 and is re-run alone
to shrink, the path `vaespec check` takes when a port fails among passing backends.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv=None) -> int:
    from vaespec.impl.backend import TorchBackend
    from vaespec.proofs_tests.check import runner
    from vaespec.proofs_tests.laws.registry import CONTROLS
    from vaespec.proofs_tests.strategies.profiles import profile_settings

    path = (argv or sys.argv[1:] or ["controls.json"])[0]
    settings, torch64 = profile_settings("ci"), TorchBackend("cpu", "float64")
    out, wall, cpu = {}, time.perf_counter(), time.process_time()
    for name in sorted(CONTROLS):
        control = CONTROLS[name]()
        if hasattr(runner, "run_laws"):
            result = runner.run_laws(control.caught_by, [control, torch64], settings)[0]
        else:
            result = runner.run_law(control.caught_by, control, settings)
        out[name] = {"law": control.caught_by, "verdict": result.verdict, "examples": result.examples,
                     "worst_ratio": result.worst_ratio, "message": result.message}
        print(f"{name}: {result.verdict}", flush=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=1)
    print(f"{len(out)} controls, {sum(v['verdict'] == 'FAIL' for v in out.values())} FAIL; "
          f"wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
