"""CPU benchmarks: convergence versus K, accuracy versus lam, speed, baselines."""
import warnings

import numpy as np

from .common import (cross_entropy_lbfgs, measures, metric, noisy_digits,
                     numpy_batched_sinkhorn, pot_looped, tag_problem)


class ConvergenceVersusK:
    """Iterations to tol=1e-6 versus K (paper Fig. 3c: nearly independent of K)."""
    params = ([16, 64, 256, 1024, 4096], ["balanced", "relaxed"])
    param_names = ["K", "variant"]
    timeout = 300

    def setup(self, K, variant):
        self.M = metric(K)
        self.h, self.y = measures(8, K, "dense")

    def track_iterations(self, K, variant):
        import sinkhorn_nb as snb
        solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
        r = solve(self.h, self.y, self.M, 10.0, tol=1e-6, max_iter=5000, check_every=1)
        return float(np.median(r.n_iter))
    track_iterations.unit = "iterations"


class ConvergenceVersusLamGamma:
    """Iterations and time to tol=1e-6 versus lam and gamma, plain and accelerated:
    8 dense Dirichlet rows, K=256, metric of unit vectors in 16-D
    (``benchmarks/convergence.py`` runs the larger grid and the anchors)."""
    params = ([10.0, 50.0, 200.0], ["balanced", "relaxed gamma=1", "relaxed gamma=10"],
              ["none", "auto"])
    param_names = ["lam", "variant", "acceleration"]
    timeout = 300

    def setup(self, lam, variant, acceleration):
        from .convergence import problem
        self.M, self.h, self.y = problem(256, 8)
        self.gamma = None if variant == "balanced" else float(variant.split("=")[1])
        self.solve(lam, acceleration, 2)            # load the compiled kernels

    def solve(self, lam, acceleration, max_iter=20000):
        from .convergence import solve
        return solve(self.h, self.y, self.M, lam, self.gamma, acceleration, max_iter)[0]

    def track_iterations(self, lam, variant, acceleration):
        return float(np.median(self.solve(lam, acceleration).n_iter))
    track_iterations.unit = "iterations"

    def time_to_tol(self, lam, variant, acceleration):
        self.solve(lam, acceleration)


class GapToExact:
    """Relative gap between <T, M> of the smoothed plan and the exact W."""
    params = [1.0, 10.0, 100.0, 1000.0]
    param_names = ["lam"]

    def setup(self, lam):
        import sinkhorn_nb as snb
        self.M = metric(16)
        self.h, self.y = measures(4, 16, "dense")
        self.exact = snb.exact_wasserstein(self.h, self.y, self.M)

    def track_relative_gap(self, lam):
        import sinkhorn_nb as snb
        r = snb.sinkhorn(self.h, self.y, self.M, lam, tol=1e-9, max_iter=200000)
        return float(np.max(np.abs(r.transport_cost - self.exact) / self.exact))
    track_relative_gap.unit = "relative gap"


class Solve:
    """One solve at a fixed 20 iterations (tol=0)."""
    params = ([100, 1000], [64, 256], ["dense", "sparse", "onehot"],
              ["float64", "float32"], ["balanced", "relaxed"])
    param_names = ["K", "n", "target", "dtype", "variant"]

    def setup(self, K, n, target, dtype, variant):
        import sinkhorn_nb as snb
        self.M = metric(K).astype(dtype)
        self.h, self.y = measures(n, K, target, dtype)
        self.solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
        self.solve(self.h, self.y, self.M, 10.0, max_iter=2, tol=0.0)   # compile

    def time_solve(self, K, n, target, dtype, variant):
        self.solve(self.h, self.y, self.M, 10.0, max_iter=20, tol=0.0)


class SideBySide:
    """n=256, K=1000, float64, 20 iterations on every side (tol=0): ours, POT looped
    over 16 rows (multiply by 16 for the batch), a plain NumPy batched Sinkhorn with
    one shared kernel, and the two BLAS products of one dense iteration x20 (the
    bound).  ``benchmarks/fast_paths.py`` prints the same comparison as ratios."""
    params = (["dense", "sparse", "onehot"], ["balanced", "relaxed"])
    param_names = ["target", "variant"]
    timeout = 300

    def setup(self, target, variant):
        import sinkhorn_nb as snb
        self.M = metric(1000)
        self.h, self.y = measures(256, 1000, target)
        self.G = np.exp(-10.0 * self.M - 1.0)
        self.GT = np.ascontiguousarray(self.G.T)
        self.out = np.empty_like(self.h)
        self.solve = snb.sinkhorn if variant == "balanced" else snb.sinkhorn_relaxed
        self.solve(self.h, self.y, self.M, 10.0, max_iter=2, tol=0.0)   # compile

    def time_sinkhorn_nb(self, target, variant):
        self.solve(self.h, self.y, self.M, 10.0, max_iter=20, tol=0.0)

    def time_pot_looped_16_rows(self, target, variant):
        pot_looped(self.h[:16], self.y[:16], self.M, 10.0, n_iter=20, variant=variant)

    def time_numpy_batched(self, target, variant):
        exponents = (1.0, 1.0) if variant == "balanced" else (10.0 / 11.0, 10.0 / 11.0)
        numpy_batched_sinkhorn(self.h, self.y, self.G, 20, exponents)

    def time_blas_two_products_x20(self, target, variant):
        for _ in range(20):
            np.dot(self.h, self.G, self.out)
            np.dot(self.h, self.GT, self.out)


class LossEngine:
    """Repeated calls of one :class:`WassersteinLoss` (the kernel built once), as the
    estimator makes them: n=256, K=1000, default tolerance, lam=10."""
    params = (["dense", "sparse", "onehot"], ["float64", "float32"])
    param_names = ["target", "dtype"]

    def setup(self, target, dtype):
        import sinkhorn_nb as snb
        self.h, self.y = measures(256, 1000, target, dtype)
        self.loss = snb.WassersteinLoss(metric(1000), lam=10.0)
        self.loss(self.h, self.y)

    def time_loss_and_gradient(self, target, dtype):
        self.loss(self.h, self.y)


class HostPath:
    """Whole calls against their bounds (``benchmarks/fast_paths.py --section host``
    prints the ratios): n=256, K=1000, lam=10, 30 iterations (tol=0)."""
    timeout = 300

    def setup(self):
        import sinkhorn_nb as snb
        self.M = metric(1000)
        self.h, self.y = measures(256, 1000, "dense")
        rng = np.random.default_rng(2)
        self.y3 = np.zeros_like(self.h)
        for r in range(256):
            self.y3[r, rng.choice(1000, size=3, replace=False)] = rng.dirichlet(np.ones(3))
        self.y1 = np.eye(1000)[rng.integers(0, 1000, 256)]
        self.G = np.exp(-10.0 * self.M - 1.0)
        self.GT = np.ascontiguousarray(self.G.T)
        self.out = np.empty_like(self.h)
        self.sparse_engine = snb.WassersteinLoss(self.M, 10.0, max_iter=30, tol=0.0)
        self.engine = snb.WassersteinLoss(self.M, 10.0)
        self.sparse_engine(self.h, self.y3)
        self.engine(self.h, self.y1)

    def time_sinkhorn_dense(self):
        import sinkhorn_nb as snb
        snb.sinkhorn(self.h, self.y, self.M, 10.0, max_iter=30, tol=0.0)

    def time_blas_60_products(self):
        for _ in range(30):
            np.dot(self.h, self.G, self.out)
            np.dot(self.h, self.GT, self.out)

    def time_sinkhorn_3_nonzeros(self):
        import sinkhorn_nb as snb
        snb.sinkhorn(self.h, self.y3, self.M, 10.0, max_iter=30, tol=0.0)

    def time_reused_loss_3_nonzeros(self):
        self.sparse_engine(self.h, self.y3)

    def time_reused_loss_one_hot(self):
        self.engine(self.h, self.y1)

    def time_numpy_log_pass(self):
        np.log(self.h)


class EstimatorAtScale:
    """Whole fits against their baselines: 20,000 noisy digits (30 L-BFGS
    iterations) and a tag-shaped multi-label problem (15 iterations)."""
    timeout = 600
    number = 1
    repeat = 3

    def setup(self):
        self.X, self.labels = noisy_digits()
        self.Xt, self.Yt, self.Mt = tag_problem()

    def time_fit_digits_wasserstein(self):
        import sinkhorn_nb as snb
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snb.WassersteinClassifier("ordinal", max_iter=30, tol=0.0).fit(self.X, self.labels)

    def time_fit_digits_logistic_regression(self):
        from sklearn.linear_model import LogisticRegression
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            LogisticRegression(max_iter=30, tol=0.0).fit(self.X, self.labels)

    def time_fit_tags_wasserstein_plus_kl(self):
        import sinkhorn_nb as snb
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snb.WassersteinClassifier(self.Mt, lam=30.0, kl_weight=0.1, max_iter=15,
                                      tol=0.0).fit(self.Xt, self.Yt)

    def time_fit_tags_cross_entropy(self):
        cross_entropy_lbfgs(self.Xt, self.Yt / self.Yt.sum(axis=1, keepdims=True), 1e-4, 15)


class Estimator:
    """WassersteinClassifier.fit against LogisticRegression.fit on the digits."""
    def setup(self):
        from sklearn.datasets import load_digits
        self.X, self.y = load_digits(return_X_y=True)
        self.X = self.X / 16.0

    def time_fit_wasserstein(self):
        import sinkhorn_nb as snb
        snb.WassersteinClassifier("ordinal", lam=20.0, kl_weight=0.05, max_iter=100).fit(
            self.X, self.y)

    def time_fit_logistic_regression(self):
        from sklearn.linear_model import LogisticRegression
        LogisticRegression(max_iter=100).fit(self.X, self.y)


class Memory:
    """Peak memory of a batched solve, n=1024, K=1000 (O(K^2 + nK), no n*K*K)."""
    def setup(self):
        self.M = metric(1000)
        self.h, self.y = measures(1024, 1000, "dense")

    def peakmem_balanced(self):
        import sinkhorn_nb as snb
        snb.sinkhorn(self.h, self.y, self.M, 10.0, max_iter=5, tol=0.0)

    def peakmem_relaxed(self):
        import sinkhorn_nb as snb
        snb.sinkhorn_relaxed(self.h, self.y, self.M, 10.0, max_iter=5, tol=0.0)
