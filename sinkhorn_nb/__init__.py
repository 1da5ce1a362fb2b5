"""sinkhorn_nb: the Wasserstein loss of Frogner et al. (NIPS 2015), compiled with Numba.

Entropic-regularized optimal transport between predictions and targets over a
finite label space with a known ground metric: smoothed (balanced) and relaxed
(unbalanced) transport, their gradients, batched over rows sharing one metric.
"""
from .cache_location import use_user_wide_cache_when_installed
from .compile_notice import install as _note_compilations

use_user_wide_cache_when_installed()     # before any kernel is defined
_note_compilations()                     # one line on stderr while kernels compile

from . import ground_metric, metrics  # noqa: E402
from .exact import exact_wasserstein  # noqa: E402
from .loss import WassersteinLoss, softmax_backward  # noqa: E402
from .result import SinkhornResult  # noqa: E402
from .transport import sinkhorn, sinkhorn_relaxed  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name):
    # The estimator pulls in scikit-learn and scipy.optimize (over a second to
    # import); load it on first use so that the kernels start fast.
    if name == "WassersteinClassifier":
        from .estimator import WassersteinClassifier
        return WassersteinClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"WassersteinClassifier"})


__all__ = ["sinkhorn", "sinkhorn_relaxed", "SinkhornResult", "WassersteinLoss",
           "WassersteinClassifier",
           "softmax_backward", "exact_wasserstein", "ground_metric", "metrics",
           "__version__"]
