"""The PyTorch and JAX wrappers against NumPy calls and each framework's own losses.

Run as a script (needs the ``torch`` and ``jax`` extras; GeomLoss, POT, optax and
OTT-JAX are used for the baselines where they are installed)::

    python benchmarks/frameworks.py              # about 6 minutes on 2 cores

It prints one Markdown table of medians and ratios measured side by side in one
process.  The same comparisons are asv benchmarks (classes below; each skips
when its framework is missing).

Problems: ``n`` rows of ``K`` labels, the points-in-the-plane metric of
:func:`sinkhorn_nb.problems.random_metric`, ``lam = 20``.

* call: one loss-and-gradient call on Dirichlet predictions against targets with
  3 non-zeros per row, float64, through NumPy arrays, through tensors or JAX arrays
  (the same engine), through the wrappers (forward and backward);
* one-hot step: one training step (forward, loss, backward, SGD update) of a linear
  model ``d -> K`` from logits, float32, our ``W + 0.1 KL`` against the framework's
  softmax cross-entropy;
* dense: per-row loss and gradient on dense (Dirichlet) targets, float64, at the
  same ``lam`` (``epsilon = 1/lam``) and tolerance, against GeomLoss's
  ``SamplesLoss("sinkhorn")``, POT's ``ot.sinkhorn2`` on torch tensors (row by row)
  and OTT-JAX's ``sinkhorn`` (vmapped over rows).
"""
import argparse
import os
import sys
import time
import warnings

# PyTorch and Numba each run an OpenMP pool; idle threads that spin make them take
# turns slowly on few cores (docs/frameworks.md).  --spin keeps OpenMP's default.
if "--spin" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # before torch and Numba start

import numpy as np  # noqa: E402

import sinkhorn_nb as snb  # noqa: E402
from sinkhorn_nb.problems import random_metric, random_predictions, random_targets  # noqa: E402

LAM = 20.0
TOL = 1e-6


def _problem(n, K, kind, seed=0, nonzeros=3):
    M = random_metric(K, seed)
    h = random_predictions(n, K, seed + 1)
    y = random_targets(kind, n, K, seed + 2, nonzeros=nonzeros)
    return M, h, y


# ------------------------------------------------------------------------ PyTorch
def torch_call(n=256, K=1000):
    """``{name: callable}`` for one loss-and-gradient call, sparse targets, float64."""
    import torch
    from sinkhorn_nb.torch import WassersteinLoss
    M, h, y = _problem(n, K, "sparse")
    engine = snb.WassersteinLoss(M, LAM)
    ht, yt = torch.from_numpy(h), torch.from_numpy(y)
    module = WassersteinLoss(M, LAM, "sum")
    hg = ht.clone().requires_grad_()

    def wrapper():
        hg.grad = None
        module(hg, yt).backward()

    return {"numpy": lambda: engine(h, y), "tensors": lambda: engine(ht, yt),
            "torch module": wrapper}


def _torch_linear(n, K, d, seed=0):
    import torch
    rng = np.random.default_rng(seed)
    X = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, K, n))
    layer = torch.nn.Linear(d, K)
    return X, labels, layer, torch.optim.SGD(layer.parameters(), lr=0.1)


def torch_onehot_step(n=256, K=1000, d=256):
    """``{name: callable}``: one SGD step of a linear model, ours against cross-entropy."""
    import torch
    import torch.nn.functional as F
    from sinkhorn_nb.torch import WassersteinLoss
    M = random_metric(K, 0)
    X, labels, layer, optimizer = _torch_linear(n, K, d)
    onehot = F.one_hot(labels, K).to(torch.float32)
    ours = WassersteinLoss(M, LAM, from_logits=True, kl_weight=0.1)

    def step(loss):
        optimizer.zero_grad()
        loss(layer(X)).backward()
        optimizer.step()

    return {"ours": lambda: step(lambda z: ours(z, onehot)),
            "cross-entropy": lambda: step(lambda z: F.cross_entropy(z, onehot))}


def torch_dense(n=32, K=1000):
    """``{name: callable}``: loss and gradient per row on dense targets, float64."""
    import torch
    from sinkhorn_nb.torch import WassersteinLoss
    rng = np.random.default_rng(0)
    points = rng.normal(size=(K, 2))
    M = snb.ground_metric.from_points(points)
    scale = np.linalg.norm(points[:, None] - points[None], axis=-1).max() / M.max()
    _, h, y = _problem(n, K, "dense")
    ht, yt = torch.from_numpy(h), torch.from_numpy(y)
    ours = WassersteinLoss(M, LAM, "sum", tol=TOL)
    out = {}

    def run_ours():
        hg = ht.clone().requires_grad_()
        ours(hg, yt).backward()

    out["ours"] = run_ours
    try:
        from geomloss import SamplesLoss
        x = torch.tensor(points / scale).expand(n, K, 2).contiguous()
        # p=1: cost |x - y| = M; blur^p = epsilon = 1/lam; no debiasing (the loss of [1])
        geom = SamplesLoss("sinkhorn", p=1, blur=1.0 / LAM, debias=False, backend="tensorized")

        def run_geomloss():
            hg = ht.clone().requires_grad_()
            geom(hg, x, yt, x).sum().backward()

        out["GeomLoss"] = run_geomloss
    except ImportError:
        pass
    try:
        import ot
        Mt = torch.from_numpy(M)

        def run_pot():
            hg = ht.clone().requires_grad_()
            total = sum(ot.sinkhorn2(hg[r], yt[r], Mt, 1.0 / LAM, stopThr=TOL, numItermax=1000)
                        for r in range(n))
            total.backward()

        out["POT"] = run_pot
    except ImportError:
        pass
    return out


# ---------------------------------------------------------------------------- JAX
def jax_call(n=256, K=1000):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from sinkhorn_nb.jax import wasserstein_loss
    M, h, y = _problem(n, K, "sparse")
    engine = snb.WassersteinLoss(M, LAM)
    hj, yj = jnp.asarray(h), jnp.asarray(y)
    grad = jax.jit(jax.value_and_grad(lambda h: wasserstein_loss(h, yj, M, LAM).sum()))
    return {"numpy": lambda: engine(h, y),
            "jax arrays": lambda: engine(hj, yj),
            "jax wrapper (jit)": lambda: jax.block_until_ready(grad(hj))}


def jax_onehot_step(n=256, K=1000, d=256):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from sinkhorn_nb.jax import wasserstein_loss
    rng = np.random.default_rng(0)
    M = random_metric(K, 0)
    X = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    onehot = jax.nn.one_hot(jnp.asarray(rng.integers(0, K, n)), K, dtype=jnp.float32)
    params = (jnp.zeros((d, K), jnp.float32), jnp.zeros(K, jnp.float32))
    out = {}

    def make_step(loss):
        @jax.jit
        def step(params):
            g = jax.grad(lambda p: loss(X @ p[0] + p[1]).mean())(params)
            return jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, g)
        return lambda: jax.block_until_ready(step(params))

    out["ours"] = make_step(lambda z: wasserstein_loss(z, onehot, M, LAM, from_logits=True,
                                                       kl_weight=0.1))
    try:
        import optax
        out["cross-entropy"] = make_step(lambda z: optax.softmax_cross_entropy(z, onehot))
    except ImportError:
        pass
    return out


def jax_dense(n=32, K=1000):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from sinkhorn_nb.jax import wasserstein_loss
    M, h, y = _problem(n, K, "dense")
    hj, yj = jnp.asarray(h), jnp.asarray(y)
    ours = jax.jit(jax.grad(lambda h: wasserstein_loss(h, yj, M, LAM, tol=TOL).sum()))
    out = {"ours": lambda: jax.block_until_ready(ours(hj))}
    try:
        from ott.geometry import geometry
        from ott.solvers import linear
        geom = geometry.Geometry(cost_matrix=jnp.asarray(M), epsilon=1.0 / LAM)

        def ott_loss(h):
            def one(a, b):
                return linear.solve(geom, a, b, threshold=TOL, max_iterations=1000).reg_ot_cost
            return jax.vmap(one)(h, yj).sum()

        ott_grad = jax.jit(jax.grad(ott_loss))
        out["OTT-JAX"] = lambda: jax.block_until_ready(ott_grad(hj))
    except ImportError:
        pass
    return out


# ------------------------------------------------------------------------- script
def _rows(title, timings, ours, baselines):
    lines = []
    for name in ours:
        for base in baselines:
            if name in timings and base in timings:
                ratio = timings[name] / timings[base]
                lines.append(f"| {title} | {name} | {timings[name] * 1e3:.2f} ms | {base} | "
                             f"{timings[base] * 1e3:.2f} ms | {ratio:.2f}x |")
    return lines


def _interleaved(cases, repeat, seed=0):
    """Median of each callable, timed in turns: one run of each per round, in an
    order shuffled every round (a fixed order favours some positions)."""
    for fn in cases.values():
        fn()
    rng = np.random.default_rng(seed)
    names = list(cases)
    times = {name: [] for name in names}
    for _ in range(repeat):
        for name in rng.permutation(names):
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=41,
                        help="timed runs of each call and step (medians; default 41)")
    parser.add_argument("--dense-repeat", type=int, default=3,
                        help="timed runs of each dense comparison (default 3)")
    parser.add_argument("--dense-rows", type=int, default=32)
    parser.add_argument("--only", choices=["torch", "jax"])
    parser.add_argument("--no-dense", action="store_true", help="skip the dense comparisons")
    parser.add_argument("--spin", action="store_true",
                        help="keep OpenMP's default wait policy (idle threads spin)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}, "
          f"repeat={args.repeat} (dense: {args.dense_repeat}), interleaved")
    print("| problem | ours | time | baseline | time | ratio |")
    print("|---|---|---|---|---|---|")
    dense = dict(n=args.dense_rows)
    groups = []
    if args.only in (None, "torch"):
        groups += [("torch: call, n=256, K=1000, 3 non-zeros, float64", torch_call, {},
                    ["tensors", "torch module"], ["numpy"]),
                   ("torch: one-hot step, n=256, K=1000, d=256, float32", torch_onehot_step, {},
                    ["ours"], ["cross-entropy"]),
                   (f"torch: dense, n={args.dense_rows}, K=1000, float64", torch_dense, dense,
                    ["ours"], ["GeomLoss", "POT"])]
    if args.only in (None, "jax"):
        groups += [("jax: call, n=256, K=1000, 3 non-zeros, float64", jax_call, {},
                    ["jax arrays", "jax wrapper (jit)"], ["numpy"]),
                   ("jax: one-hot step, n=256, K=1000, d=256, float32", jax_onehot_step, {},
                    ["ours"], ["cross-entropy"]),
                   (f"jax: dense, n={args.dense_rows}, K=1000, float64", jax_dense, dense,
                    ["ours"], ["OTT-JAX"])]
    for title, make, kwargs, ours, baselines in groups:
        if args.no_dense and "dense" in title:
            continue
        cases = make(**kwargs)
        repeat = args.dense_repeat if "dense" in title else args.repeat
        timings = _interleaved(cases, repeat)
        for line in _rows(title, timings, ours, baselines):
            print(line, flush=True)


# ---------------------------------------------------------------------------- asv
class _Cases:
    """Builds the callables of one comparison in setup; skips without the framework."""
    make = None

    def setup(self, *_):
        try:
            self.cases = type(self).make()
        except ImportError:
            raise NotImplementedError("framework not installed") from None
        for fn in self.cases.values():
            fn()


class TorchCall(_Cases):
    """One loss-and-gradient call, n=256, K=1000, 3 non-zeros: NumPy vs tensors."""
    make = staticmethod(torch_call)

    def time_numpy(self):
        self.cases["numpy"]()

    def time_tensors(self):
        self.cases["tensors"]()

    def time_torch_module(self):
        self.cases["torch module"]()


class TorchOneHotStep(_Cases):
    """One SGD step of a linear model: ``W + 0.1 KL`` from logits vs cross-entropy."""
    make = staticmethod(torch_onehot_step)

    def time_ours(self):
        self.cases["ours"]()

    def time_cross_entropy(self):
        self.cases["cross-entropy"]()


class JaxCall(_Cases):
    """One loss-and-gradient call through JAX arrays and through the jitted wrapper."""
    make = staticmethod(jax_call)

    def time_numpy(self):
        self.cases["numpy"]()

    def time_jax_arrays(self):
        self.cases["jax arrays"]()

    def time_jax_wrapper(self):
        self.cases["jax wrapper (jit)"]()


class JaxOneHotStep(_Cases):
    make = staticmethod(jax_onehot_step)

    def time_ours(self):
        self.cases["ours"]()


if __name__ == "__main__":
    main()
