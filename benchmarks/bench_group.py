"""Benchmark: `vta group` on synthetic cohorts of 100 and 1000 subject-hemispheres, Dask LocalCluster.

Cohorts: :func:`vta.cohort.synthetic.make_synthetic_cohort` (SceneRay SR1242 at the NAc
of both sides, 2-5 mA, 0.5 mm subject grids, the synthetic ALIC bundles, a planted
NAc/ALIC region driving the outcome), ``N/2`` subjects x (R, L).

Analysis: :func:`vta.cohort.run.run_group` with one unit per hemisphere, left hemispheres
mirrored onto the right (``--unit hemisphere --mirror``: N units), 1 mm common grid,
default ``min N`` (20 % of the units), 1000 permutations for every p-value: VTA and
E-field maps (max-statistic FWE; the voxel chunks are tasks on a LocalCluster of 2
single-threaded worker processes), fibre filtering of the synthetic ALIC bundles (both
sides' fibres, each activated only by its side's units), leave-one-out prediction from the
sweet spot and from the fibres, NIfTI/CSV/PNG outputs and the report.

Two configurations per cohort: ``default`` (as above, what ``vta group BATCH --unit
hemisphere --mirror`` does) and ``dense`` (``--spacing 0.5 --min-n 3 --no-prediction``:
every voxel of a 0.5 mm grid covered by >= 3 units and every fibre activated by >= 3
units is tested - the stress case of the chunked voxel statistics).

Timed per phase (``group_summary.json`` ``timings_s``): reading the VTAs, VTA statistics,
E-field reading + statistics, fibres, prediction, outputs, total; plus the generation of
the cohort (not part of `vta group`). Peak memory: VmHWM of the analysing process
(the Dask client; the generation runs in its own process) and of each worker (via
``client.run``), in MB.

Run:  .venv/bin/python benchmarks/bench_group.py [--sizes 100 1000] [--permutations 1000]
Writes benchmarks/results/bench_group.json.
"""

from __future__ import annotations

import benchlib  # noqa: F401  (first: pins to 2 cores before numpy/numba start)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PHASES = ("read_vta", "voxel_stats_vta", "voxel_stats_efield", "fibres", "prediction", "outputs", "total")


def _vmhwm_mb() -> float:
    """Peak resident memory of this process (MB, /proc VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def generate(n_hemispheres: int, out: Path) -> dict:
    """Child process: write the cohort; its wall time and peak memory."""
    from vta.cohort.synthetic import make_synthetic_cohort

    t0 = time.perf_counter()
    truth = make_synthetic_cohort(out, n_subjects=n_hemispheres // 2, hemispheres=("R", "L"), effect="region",
                                  seed=0)
    return {"generate_s": time.perf_counter() - t0, "generate_peak_MB": _vmhwm_mb(), "batch_MB": _du_mb(out),
            "subjects": len(truth.subjects)}


CONFIGS = {"default": {}, "dense": {"spacing_mm": 0.5, "min_n": 3, "prediction": False}}


def analyse(batch: Path, permutations: int, workers: int, config: str) -> dict:
    """Child process: vta group on a LocalCluster; per-phase times and peak memories."""
    from distributed import Client, LocalCluster

    from vta.cohort.run import run_group

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        baseline = client.run(_vmhwm_mb)
        t0 = time.perf_counter()
        result = run_group(batch, "craving_reduction", unit="hemisphere", mirror=True, permutations=permutations,
                           client=client, out_dir=batch / f"group_{config}", **CONFIGS[config])
        wall = time.perf_counter() - t0
        workers_peak = client.run(_vmhwm_mb)
    finally:
        client.close()
        cluster.close()
    s = result.summary
    maps = s["maps"]
    return {
        "config": config, "spacing_mm": s["parameters"]["spacing_mm"],
        "units": s["cohort"]["n_units"], "min_n": s["parameters"]["min_n"],
        "support_voxels": s["grid"]["support_voxels"],
        "tested_vta": maps["vta"]["n_tested"], "tested_efield": maps.get("efield", {}).get("n_tested"),
        "significant_vta": maps["vta"]["n_significant"],
        "fibres_tested": int(sum(1 for v in (result.fibres.stat if result.fibres is not None else []) if v == v)),
        "r_voxels": result.predictions["voxels"].r if "voxels" in result.predictions else None,
        "timings_s": {k: s["timings_s"].get(k) for k in PHASES}, "wall_s": wall,
        "client_peak_MB": _vmhwm_mb(), "worker_peak_MB": sorted(workers_peak.values()),
        "worker_start_MB": sorted(baseline.values()), "warnings": s["warnings"],
    }


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="subject-hemispheres per cohort")
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", default=None, help="keep the cohorts under this folder")
    ap.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # generate N DIR | analyse DIR P WORKERS CONFIG
        logging.basicConfig(level=logging.WARNING)
        if args.child[0] == "generate":
            res = generate(int(args.child[1]), Path(args.child[2]))
        else:
            res = analyse(Path(args.child[1]), int(args.child[2]), int(args.child[3]), args.child[4])
        sys.stdout.write(json.dumps(res) + "\n")
        return

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vta_bench_group_"))
    results = []
    try:
        for n in args.sizes:
            batch = root / f"cohort_{n}"
            shutil.rmtree(batch, ignore_errors=True)
            gen = _child(["--child", "generate", str(n), str(batch)])
            for config in CONFIGS:
                res = _child(["--child", "analyse", str(batch), str(args.permutations), str(args.workers), config])
                results.append({"subject_hemispheres": n, **gen, **res})
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    machine = benchlib.machine()
    out = {"case": "vta group, synthetic NAc/ALIC cohorts (vta.cohort.synthetic), --unit hemisphere --mirror, "
                   f"{args.permutations} permutations, LOO prediction, LocalCluster({args.workers} workers x 1 thread)",
           "results": results, "machine": machine}
    cols = ["N", "config", "tested vox", "generate", "read VTAs", "VTA maps", "E-field maps", "fibres", "prediction", "outputs", "total",
            "client peak", "worker peak"]
    print(f"{cols[0]:>5} " + " ".join(f"{c:>12}" for c in cols[1:]))
    for r in results:
        t = r["timings_s"]
        cells = [r["config"], str(r["tested_vta"]), f"{r['generate_s']:.1f} s"] + [f"{(t.get(k) or 0.0):.1f} s" for k in PHASES] + [
            f"{r['client_peak_MB']:.0f} MB", f"{max(r['worker_peak_MB']):.0f} MB"]
        print(f"{r['units']:>5} " + " ".join(f"{c:>12}" for c in cells))
    print(f"machine: {machine['cpu_model']}, {machine['cores_used']} cores used, load {machine['load_average']}")
    path = HERE / "results" / "bench_group.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
