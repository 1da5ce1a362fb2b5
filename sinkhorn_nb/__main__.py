"""Command line: ``python -m sinkhorn_nb COMMAND`` (or ``sinkhorn-nb COMMAND``).

``--help`` imports nothing beyond the package itself; each command imports what
it needs when it runs.
"""
import argparse
import os
import sys
import time

#: Where results go unless ``--out`` says otherwise (one folder per command).
DEFAULT_OUT = "sinkhorn_nb_results"


def digits_demo(args):
    from .demo import main
    return main(args.out or os.path.join(DEFAULT_OUT, "demo"))


def run_experiment(args):
    from .experiments import run
    out = args.out or os.path.join(DEFAULT_OUT, args.name)
    start = time.perf_counter()
    run(args.name, quick=args.quick, out=out)
    print(f"{args.name}: figures (PNG) and numbers (CSV, JSON) written to {out}/ "
          f"in {time.perf_counter() - start:.0f} s")
    return 0


def losses_demo(args):
    """Compute both losses on a small ordinal problem and print them."""
    import numpy as np

    import sinkhorn_nb as snb

    K, n = 10, 1000
    rng = np.random.default_rng(0)
    M = snb.ground_metric.ordinal(K, p=1.0)
    labels = rng.integers(0, K, n)
    y = np.eye(K)[labels]
    near = np.exp(-np.abs(np.arange(K)[None, :] - labels[:, None]))   # mass near the label
    h = near / near.sum(axis=1, keepdims=True)
    far = rng.dirichlet(np.ones(K), size=n)                            # mass anywhere
    for pred in (h, far):           # load the kernels (compiled on a first run), untimed
        snb.sinkhorn(pred[:2], y[:2], M, 20.0)
        snb.sinkhorn_relaxed(pred[:2], y[:2], M, 20.0, gamma_a=1.0, gamma_b=1.0, tol=1e-7)
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


def _experiment_help():
    from .experiments import CATALOG
    lines = ["experiments (run time on 2 cores under load, --quick / full size; the first "
             "run of a fresh install compiles the kernels once, up to 30-45 s more):"]
    for name, (what, quick, full) in CATALOG.items():
        lines.append(f"  {name:<8} {what} ({quick} / {full})")
    return "\n".join(lines)


def parser():
    from .experiments import EXPERIMENTS
    top = argparse.ArgumentParser(
        prog="python -m sinkhorn_nb",
        description="sinkhorn_nb: the Wasserstein loss of Frogner et al. (NIPS 2015), "
                    "compiled with Numba.",
        epilog=f"Results go to ./{DEFAULT_OUT}/COMMAND unless --out says otherwise.  "
               "The installed console script sinkhorn-nb is the same command.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="where the mistakes land, Wasserstein vs KL on the 8x8 digits "
                     "(9-15 s; 30-45 s the first time, while the kernels compile)",
        description="Train softmax linear models on scikit-learn's 8x8 digits with the "
                    "Wasserstein loss for the ordinal metric |k - k'|^p and with KL (logistic "
                    "regression), over 10 random splits; print the accuracy, how far the "
                    "mistakes land from the true digit and the expected distance, with the "
                    "paired differences from KL and their 95 % intervals, and write "
                    "digits_wasserstein.png.")
    demo.add_argument("--out", help=f"output folder (default: {DEFAULT_OUT}/demo)")
    demo.set_defaults(run=digits_demo)
    experiment = commands.add_parser(
        "experiment", help="reproduce one of the paper's experiments (PNG, CSV, JSON)",
        description="Reproduce one of the paper's experiments; needs the experiments "
                    'extra: pip install "sinkhorn_nb[experiments]".',
        epilog=_experiment_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    experiment.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    experiment.add_argument("--quick", action="store_true",
                            help="reduced sizes (under a minute on 2 cores, see below)")
    experiment.add_argument("--out", help=f"output folder (default: {DEFAULT_OUT}/NAME)")
    experiment.set_defaults(run=run_experiment)
    losses = commands.add_parser(
        "losses", help="both losses on 1,000 predictions over 10 ordinal labels (7-9 s)",
        description="Compute the smoothed (balanced) loss, the relaxed loss and the "
                    "transport cost <T, M> for 1,000 predictions over K=10 ordinal labels "
                    "(one-hot targets, lam=20), once for predictions with their mass near "
                    "the label and once for random ones, and print the means and times: a "
                    "check that the solvers run, with no optional package.")
    losses.set_defaults(run=losses_demo)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help(sys.stderr)
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
