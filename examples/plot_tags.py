"""
Tag prediction with a semantic metric (Figs. 5-6)
=================================================

MovieLens genres with a GloVe metric between the genre words: the top-K cost and
the AUC of W + a KL against the KL baseline over random splits, on all genres and
with one genre per cluster of similar genres.
The run prints one line per finished model (quick sizes).
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import tags

out = tempfile.mkdtemp()
summary = tags.run(quick=True, out=out)
plt.figure(figsize=(12, 8))
plt.imshow(plt.imread(f"{out}/tags.png"))
plt.axis("off")
plt.show()
