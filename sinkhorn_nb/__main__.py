"""Command line: ``python -m sinkhorn_nb COMMAND``."""
import argparse
import json
import sys
import time

import numpy as np


def digits_demo(args):
    from .demo import main
    return main(args.out)


def run_experiment(args):
    from .experiments import run
    start = time.perf_counter()
    summary = run(args.name, quick=args.quick, out=args.out)
    print(json.dumps(summary, indent=1, default=float))
    print(f"{args.name}: figures and numbers written to {args.out} "
          f"({time.perf_counter() - start:.0f}s)")
    return 0


def losses_demo(args):
    """Compute both losses on a small ordinal problem and print them."""
    import sinkhorn_nb as snb

    K, n = 10, 1000
    rng = np.random.default_rng(0)
    M = snb.ground_metric.ordinal(K, p=1.0)
    labels = rng.integers(0, K, n)
    y = np.eye(K)[labels]
    near = np.exp(-np.abs(np.arange(K)[None, :] - labels[:, None]))   # mass near the label
    h = near / near.sum(axis=1, keepdims=True)
    far = rng.dirichlet(np.ones(K), size=n)                            # mass anywhere
    print(f"{n} predictions over K={K} ordinal labels, lam=20")
    print(f"{'prediction':<12}{'balanced W':>12}{'relaxed W_KL':>14}{'<T, M>':>10}{'time':>9}")
    for name, pred in (("near label", h), ("random", far)):
        t0 = time.perf_counter()
        bal = snb.sinkhorn(pred, y, M, 20.0)
        rel = snb.sinkhorn_relaxed(pred, y, M, 20.0, gamma_a=1.0, gamma_b=1.0, tol=1e-7)
        dt = time.perf_counter() - t0
        print(f"{name:<12}{bal.loss.mean():>12.4f}{rel.loss.mean():>14.4f}"
              f"{bal.transport_cost.mean():>10.4f}{dt:>8.2f}s")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sinkhorn_nb",
        description="sinkhorn_nb: Wasserstein losses compiled with Numba.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="Wasserstein vs KL on the 8x8 digits: table and PNG figure")
    demo.add_argument("--out", default=".", help="folder for the figure (default: .)")
    demo.set_defaults(run=digits_demo)
    from .experiments import EXPERIMENTS
    experiment = commands.add_parser(
        "experiment", help="reproduce one of the paper's experiments (PNG + CSV/JSON)")
    experiment.add_argument("name", choices=EXPERIMENTS)
    experiment.add_argument("--quick", action="store_true",
                            help="reduced sizes, a few minutes on 2 cores")
    experiment.add_argument("--out", default=".", help="output folder (default: .)")
    experiment.set_defaults(run=run_experiment)
    losses = commands.add_parser("losses", help="compute both losses on a small problem")
    losses.set_defaults(run=losses_demo)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
