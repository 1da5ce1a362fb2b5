"""
JAX: a classifier trained on ``W + 0.1 KL``
===========================================

A two-layer network on the 8x8 digits that ship with scikit-learn, trained from
logits on the Wasserstein loss plus a tenth of the KL divergence
(:func:`sinkhorn_nb.jax.wasserstein_loss` inside a jitted training step, ground
metric ``|k - k'|`` between the digits, ``lam = 20``), and the same network
trained on the softmax cross-entropy alone.  The figure shows each model's
training loss, the test accuracy and the mean ``|k - k'|`` between the true and
the predicted digit on the test set, and the time of each epoch.  Needs
``pip install "sinkhorn_nb[jax]"``.
"""
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import sinkhorn_nb as snb
from sinkhorn_nb.jax import wasserstein_loss

X, labels = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, labels, test_size=0.3,
                                                    random_state=0)
X_train, X_test = jnp.asarray(X_train, jnp.float32), jnp.asarray(X_test, jnp.float32)
targets = jax.nn.one_hot(y_train, 10, dtype=jnp.float32)
M = snb.ground_metric.ordinal(10, p=1.0)          # |k - k'|, scaled so that max M < 1


def init(key, sizes=(64, 64, 10)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), jnp.zeros(n))
            for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def logits(params, x):
    (W1, b1), (W2, b2) = params
    return jax.nn.relu(x @ W1 + b1) @ W2 + b2


losses = {
    "W + 0.1 KL": lambda z, t: wasserstein_loss(z, t, M, 20.0, from_logits=True,
                                                kl_weight=0.1).mean(),
    "cross-entropy": lambda z, t: -(t * jax.nn.log_softmax(z)).sum(-1).mean(),
}


def make_step(loss, lr=0.5):
    @jax.jit
    def step(params, x, t):
        value, grads = jax.value_and_grad(lambda p: loss(logits(p, x), t))(params)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), value
    return step


EPOCHS, BATCH = 12, 64
history = {}
for name, loss in losses.items():
    params, step = init(jax.random.PRNGKey(0)), make_step(loss)
    order = np.random.default_rng(0)
    rows = []
    for epoch in range(EPOCHS):
        start, total = time.perf_counter(), 0.0
        for batch in np.array_split(order.permutation(len(X_train)), len(X_train) // BATCH):
            params, value = step(params, X_train[batch], targets[batch])
            total += float(value) * len(batch)
        seconds = time.perf_counter() - start
        predicted = np.asarray(logits(params, X_test).argmax(1))
        accuracy = float((predicted == y_test).mean())
        distance = float(np.abs(predicted - y_test).mean())
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
# the first epoch includes jit compilation: the median of the others
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
