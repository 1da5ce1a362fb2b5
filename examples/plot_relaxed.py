"""
Relaxed against smoothed transport (Fig. 3)
===========================================

(a) The relative gap between the relaxed and the smoothed loss on normalized
histograms as ``gamma`` grows; (b) both transport costs approaching the exact
Wasserstein distance as ``lam`` (and ``gamma``) grow; (c) iterations to
convergence versus the number of labels K.
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import relaxed

out = tempfile.mkdtemp()
summary = relaxed.run(quick=True, out=out)
for row in summary["iterations_versus_k"]:
    print(row)
plt.imshow(plt.imread(f"{out}/relaxed.png"))
plt.axis("off")
plt.show()
