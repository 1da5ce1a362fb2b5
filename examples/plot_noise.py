"""
Label noise toward nearby classes (Fig. 2)
==========================================

Classes are points in the plane; training labels are switched to one of the three
nearest classes with a given probability.  The mean distance between the predicted
and the true class on clean test data, for the KL baseline and the Wasserstein
models, against the number of classes (averaged over the noise levels) and against
the noise level (averaged over K), with the paired differences from KL.
The run prints one line per finished model (quick sizes).
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import noise

out = tempfile.mkdtemp()
summary = noise.run(quick=True, out=out)
plt.figure(figsize=(12, 8))
plt.imshow(plt.imread(f"{out}/noise.png"))
plt.axis("off")
plt.show()
