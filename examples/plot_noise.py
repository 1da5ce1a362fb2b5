"""
Label noise toward nearby classes (Fig. 2)
==========================================

Classes are points in the plane; training labels are switched to one of the three
nearest classes with a given probability.  The mean distance between the predicted
and the true class on clean test data, for the KL baseline and two Wasserstein
models, versus the number of classes and versus the noise level.
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import noise

out = tempfile.mkdtemp()
summary = noise.run(quick=True, out=out)
for row in summary["by_noise"]:
    print(row)
plt.imshow(plt.imread(f"{out}/noise.png"))
plt.axis("off")
plt.show()
