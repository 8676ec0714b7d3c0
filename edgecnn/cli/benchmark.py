"""``edgecnn benchmark``: the model x options x precision x target matrix (see edgecnn/workstation/benchmark.py)."""

from __future__ import annotations

from edgecnn.cli._output import console, no_extra, positive_int, print_json


def _csv(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def add_parser(sub) -> None:
    sp = sub.add_parser(
        "benchmark",
        help="the model x precision x target matrix: size, accuracy, coverage, latency, Pareto plots",
        description="Every cell: size, accuracy against float (and top-1 on --eval), op coverage per delegate, "
        "latency measured on a node of that target (this machine is cpu; with --ray, nodes that declare "
        "the target) or predicted, conversion time. Cached per cell: a second run resumes.",
    )
    sp.add_argument("--models", type=_csv, required=True, help="registry names, comma-separated (edgecnn models)")
    sp.add_argument("--set", action="append", metavar="NAME=V1,V2", help="a builder option's values (repeatable), e.g. alpha=0.35,0.5")
    sp.add_argument("--precisions", type=_csv, default=["fp32", "int8"], help="comma-separated (default fp32,int8)")
    sp.add_argument("--targets", type=_csv, default=["cpu"], help="comma-separated target names (default cpu)")
    sp.add_argument("--calibration", help="calibration data: DIR, VIDEO or bundled (default bundled)")
    sp.add_argument("--eval", help="a folder of class subfolders: real top-1")
    sp.add_argument("--samples", type=positive_int, default=64, help="calibration samples (default 64)")
    sp.add_argument("--runs", type=positive_int, default=30, help="counted runs per latency (default 30)")
    sp.add_argument("--output", required=True, help="results folder (an earlier run's folder resumes)")
    sp.add_argument("--ray", metavar="auto|ADDRESS", help="run the cells on a Ray cluster (auto: join or start a local one)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run, stop_note="the finished cells are kept: run the same command again to resume")


def run(args, extra) -> int:
    import contextlib
    import sys

    from edgecnn.workstation.benchmark import run_benchmark

    no_extra(extra)
    # Ray's driver prints cluster events ("a worker died …") on stdout: keep stdout for our JSON
    with contextlib.redirect_stdout(sys.stderr):
        r = run_benchmark(
            args.models,
            args.set or [],
            args.precisions,
            args.targets,
            args.output,
            calibration=args.calibration,
            eval_dir=args.eval,
            samples=args.samples,
            runs=args.runs,
            ray_address=args.ray,
            progress=not args.json,
        )
    if args.json:
        print_json(r)
    else:
        con = console()
        con.print(f"{r['ok']} of {r['cells']} cells ok ({r['failed']} failed, {r['cached']} from the cache) in {r['seconds']:.0f} s, {r['mode']}")
        con.print(f"results: {r['csv']}, {r['json']}; summary: {r['html']}" + (f"; Pareto plots: {', '.join(r['plots'].values())}" if r["plots"] else ""))
    if not r["failed"]:
        return 0
    # a matrix with holes is not a success: a script must see it (the finished cells are kept, the failed ones retried)
    print(
        f"edgecnn benchmark: {r['failed']} of {r['cells']} cells failed (first: {r['first_error']}); "
        "the reasons are in the results; run the same command again to retry them",
        file=sys.stderr,
    )
    return 1
