"""
Digits with the metric ``|k - k'|^p`` (Fig. 4)
==============================================

Softmax models trained on the Wasserstein loss for ground metrics ``|k - k'|^p``: the
mean probability given to each digit against p for test images of digits 0 and 4,
and the mean predicted measure of every model.
The run prints one line per finished model (quick sizes).
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import digits

out = tempfile.mkdtemp()
summary = digits.run(quick=True, out=out)
plt.figure(figsize=(12, 8))
plt.imshow(plt.imread(f"{out}/digits.png"))
plt.axis("off")
plt.show()
