"""
PyTorch: a classifier trained on ``W + 0.1 KL``
===============================================

A two-layer network on the 8x8 digits that ship with scikit-learn, trained from
logits on the Wasserstein loss plus a tenth of the KL divergence
(:class:`sinkhorn_nb.torch.WassersteinLoss`, ground metric ``|k - k'|`` between
the digits, ``lam = 20``), and the same network trained on PyTorch's
cross-entropy alone.  The figure shows each model's training loss, the test
accuracy and the mean ``|k - k'|`` between the true and the predicted digit on
the test set, and the time of each epoch.  Needs ``pip install "sinkhorn_nb[torch]"``.

PyTorch and Numba's parallel loops each keep an OpenMP thread pool whose idle
threads spin by default; on a machine with few cores the two pools take turns
slowly, so this example asks them to sleep when idle (``OMP_WAIT_POLICY``, set
before either pool starts; see :doc:`/frameworks`).
"""
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # before torch and Numba start

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import sinkhorn_nb as snb  # noqa: E402
from sinkhorn_nb.torch import WassersteinLoss  # noqa: E402

torch.manual_seed(0)
X, labels = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, labels, test_size=0.3,
                                                    random_state=0)
X_train, X_test = (torch.tensor(a, dtype=torch.float32) for a in (X_train, X_test))
y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
targets = torch.nn.functional.one_hot(y_train, 10).to(torch.float32)
M = snb.ground_metric.ordinal(10, p=1.0)          # |k - k'|, scaled so that max M < 1

losses = {
    "W + 0.1 KL": WassersteinLoss(M, lam=20.0, from_logits=True, kl_weight=0.1),
    "cross-entropy": torch.nn.CrossEntropyLoss(),
}
EPOCHS, BATCH = 12, 64
history = {}
for name, loss in losses.items():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rows = []
    for epoch in range(EPOCHS):
        start, total = time.perf_counter(), 0.0
        for batch in torch.randperm(len(X_train)).split(BATCH):
            optimizer.zero_grad()
            value = loss(model(X_train[batch]), targets[batch])
            value.backward()
            optimizer.step()
            total += value.item() * len(batch)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            predicted = model(X_test).argmax(1)
        accuracy = (predicted == y_test).float().mean().item()
        distance = (predicted - y_test).abs().float().mean().item()
        rows.append((total / len(X_train), accuracy, distance, seconds))
        print(f"{name:>13}  epoch {epoch + 1:2d}  loss {rows[-1][0]:.4f}  "
              f"accuracy {accuracy:.3f}  mean |k - k'| {distance:.3f}  {seconds * 1e3:.0f} ms")
    history[name] = np.array(rows)

fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
epochs = np.arange(1, EPOCHS + 1)
for name, rows in history.items():
    axes[0].plot(epochs, rows[:, 0], marker="o", label=name)
    axes[1].plot(epochs, rows[:, 1], marker="o", label=name)
    axes[2].plot(epochs, rows[:, 2], marker="o", label=name)
axes[3].bar(list(history), [np.median(rows[1:, 3]) * 1e3 for rows in history.values()],
            color=["C0", "C1"])
for ax, title in zip(axes, ["training loss (each its own)", "test accuracy",
                            "test mean |k - k'|", "median time per epoch (ms)"]):
    ax.set_title(title)
for ax in axes[:3]:
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()
plt.show()
