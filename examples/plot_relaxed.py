"""
Relaxed against smoothed transport (Fig. 3)
===========================================

(a) The relaxed loss approaches the smoothed loss as gamma grows; (b) the transport
cost of the plans approaches the exact Wasserstein distance as lam grows; (c)
Sinkhorn iterations against the number of labels K.
The run prints one line per finished model (quick sizes).
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import relaxed

out = tempfile.mkdtemp()
summary = relaxed.run(quick=True, out=out)
plt.figure(figsize=(12, 8))
plt.imshow(plt.imread(f"{out}/relaxed.png"))
plt.axis("off")
plt.show()
