"""Representation diagnostics on held-out tasks: MI(z; task id), a linear probe, a 2-D embedding.

For each seed, z is inferred for every test task from ``num_contexts`` independent offline
contexts. The contexts are split in two halves: the estimators are *fitted* on the first half
and *scored* on the second, so neither number rewards memorising particular contexts.

* **MI lower bound** ``I(Z; M) >= log C - CE`` (Barber–Agakov classification bound,
  ``jcomrl.mi.classification_bound``) with a softmax (multinomial logistic regression)
  classifier ``q(m | z)`` fitted by full-batch Adam on standardised z. Why this estimator: the
  task id is discrete with a known uniform prior over the ``C`` test tasks, so the supervised
  bound needs no negatives and no critic architecture, has low variance, and its bias (the
  classifier's error) only makes it conservative. It is bounded by ``log C`` (perfectly
  separable codes); a value near 0 (or below: a bad held-out classifier) means z carries no
  usable task information. A linear classifier measures *linearly decodable* information,
  which is what the linear policy/critic input layers consume.
* **Linear-probe R²** from z to the task parameters: closed-form ridge regression (with bias) on
  the fit half, ``R² = 1 - SSE / SST`` pooled over parameter dimensions on the held-out half.
  The oracle (z = task parameters) scores 1.
* **2-D embedding**: PCA of the codes (t-SNE as well when scikit-learn is installed), coloured by
  the task parameter (the parameter itself when 1-D, else its first principal component),
  saved as PNG.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl import atomic, mi, optim
from jcomrl.algos.learner import Learner
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_context


def task_codes(learner: Learner, params, data: OfflineDataset, rows, key: jax.Array, *,
               num_contexts: int, context_mode: str, context_size: int) -> jnp.ndarray:
  """``z [S, T, C, Z]`` for params with a leading seed axis and ``C`` contexts per task."""
  rows = jnp.asarray(rows, jnp.int32)
  tps = data.task_params[rows]

  def one_seed(p, data):
    def one_draw(k):
      ctx = sample_context(k, data, rows, size=context_size, mode=context_mode)
      return jax.vmap(lambda c, tp: learner.encode(p, c, tp))(ctx, tps)  # [T, Z]

    return jax.vmap(one_draw, out_axes=1)(jax.random.split(key, num_contexts))

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None)))(params, data)


def _standardise(fit: np.ndarray, test: np.ndarray):
  mean, std = fit.mean(axis=0), fit.std(axis=0) + 1e-6
  return (fit - mean) / std, (test - mean) / std


def classification_mi(z_fit, y_fit, z_test, y_test, num_classes: int, *, steps: int = 500,
                      learning_rate: float = 0.05, weight_decay: float = 1e-4) -> dict:
  """Softmax-classifier MI lower bound ``log C - CE`` (nats) on held-out codes."""
  x_fit, x_test = _standardise(np.asarray(z_fit, np.float64), np.asarray(z_test, np.float64))
  x_fit, x_test = jnp.asarray(x_fit, jnp.float32), jnp.asarray(x_test, jnp.float32)
  y_fit, y_test = jnp.asarray(y_fit, jnp.int32), jnp.asarray(y_test, jnp.int32)
  params = {"w": jnp.zeros((x_fit.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  opt = optim.adam(learning_rate, weight_decay=weight_decay)

  def loss(p, x, y):
    return -mi.classification_bound(x @ p["w"] + p["b"], y)

  @jax.jit
  def fit(p):
    def step(carry, _):
      p, s = carry
      g = jax.grad(loss)(p, x_fit, y_fit)
      return optim.step(opt, s, g, p), None

    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
    return p

  p = fit(params)
  logits = x_test @ p["w"] + p["b"]
  bound = float(mi.classification_bound(logits, y_test))
  train_bound = float(mi.classification_bound(x_fit @ p["w"] + p["b"], y_fit))
  acc = float(jnp.mean(jnp.argmax(logits, axis=-1) == y_test))
  return {"mi_lower_bound": bound, "mi_fit_bound": train_bound, "mi_max": math.log(num_classes),
          "heldout_accuracy": acc}


def ridge_probe_r2(z_fit, y_fit, z_test, y_test, ridge: float = 1e-3) -> float:
  """Held-out R² of closed-form ridge regression ``y ~ W z + b`` (pooled over y dims)."""
  x_fit = np.concatenate([np.asarray(z_fit, np.float64), np.ones((len(z_fit), 1))], axis=1)
  x_test = np.concatenate([np.asarray(z_test, np.float64), np.ones((len(z_test), 1))], axis=1)
  y_fit, y_test = np.asarray(y_fit, np.float64), np.asarray(y_test, np.float64)
  reg = ridge * np.eye(x_fit.shape[1])
  reg[-1, -1] = 0.0  # no penalty on the bias
  w = np.linalg.solve(x_fit.T @ x_fit + reg, x_fit.T @ y_fit)
  sse = float(np.sum((x_test @ w - y_test) ** 2))
  sst = float(np.sum((y_test - y_test.mean(axis=0)) ** 2))
  return 1.0 - sse / max(sst, 1e-12)


def analyse_codes(z: np.ndarray, task_params: np.ndarray) -> dict:
  """Diagnostics of one seed's codes ``z [T, C, Z]`` (contexts split half fit / half test)."""
  z = np.asarray(z, np.float64)
  t, c, _ = z.shape
  if c < 2:
    raise ValueError(f"need at least 2 contexts per task to hold some out, got {c}")
  half = c // 2
  labels = np.repeat(np.arange(t)[:, None], c, axis=1)
  params = np.broadcast_to(np.asarray(task_params, np.float64)[:, None, :],
                           (t, c, task_params.shape[-1]))
  fit = lambda a: a[:, :half].reshape((t * half,) + a.shape[2:])
  test = lambda a: a[:, half:].reshape((t * (c - half),) + a.shape[2:])
  out = classification_mi(fit(z), fit(labels), test(z), test(labels), t)
  out["probe_r2"] = ridge_probe_r2(fit(z), fit(params), test(z), test(params))
  within = float(np.mean(np.var(z, axis=1)))
  between = float(np.mean(np.var(z.mean(axis=1), axis=0)))
  out["between_within_variance_ratio"] = between / max(within, 1e-12)
  return out


def representation_diagnostics(learner: Learner, params, data: OfflineDataset, rows,
                               key: jax.Array, *, num_contexts: int = 16,
                               context_mode: str = "transitions",
                               context_size: int = 64) -> tuple[dict, np.ndarray]:
  """Per-seed and mean diagnostics on the tasks ``rows``; also returns the codes [S,T,C,Z]."""
  z = np.asarray(task_codes(learner, params, data, rows, key, num_contexts=num_contexts,
                            context_mode=context_mode, context_size=context_size))
  tps = np.asarray(data.task_params)[np.asarray(rows)]
  per_seed = [analyse_codes(z[s], tps) for s in range(z.shape[0])]
  keys = per_seed[0].keys()
  summary = {k: float(np.mean([d[k] for d in per_seed])) for k in keys}
  summary.update({f"seed_{k}": [d[k] for d in per_seed] for k in keys})
  summary.update(num_tasks=len(tps), num_contexts=int(num_contexts),
                 context_mode=context_mode, context_size=int(context_size),
                 mi_estimator="softmax-classifier Barber-Agakov bound log C - CE on held-out "
                              "contexts (nats)",
                 probe="closed-form ridge (1e-3) z -> task parameters, held-out R^2")
  return summary, z


def _colour(task_params: np.ndarray) -> tuple[np.ndarray, str]:
  p = np.asarray(task_params, np.float64)
  if p.shape[-1] == 1:
    return p[:, 0], "task parameter"
  centred = p - p.mean(axis=0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  return centred @ vt[0], "task parameter (1st principal component)"


def pca_2d(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  x = x - x.mean(axis=0)
  _, _, vt = np.linalg.svd(x, full_matrices=False)
  out = x @ vt[:2].T
  if out.shape[1] < 2:
    out = np.concatenate([out, np.zeros((len(out), 2 - out.shape[1]))], axis=1)
  return out


def plot_embedding(z: np.ndarray, task_params: np.ndarray, path: str, title: str = "") -> list[str]:
  """Saves PCA (and t-SNE if scikit-learn is installed) plots of ``z [T, C, Z]``; returns paths."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  t, c, zd = z.shape
  flat = np.asarray(z, np.float64).reshape(t * c, zd)
  colour, label = _colour(task_params)
  colour = np.repeat(colour, c)
  views = [("PCA", pca_2d(flat))]
  try:  # optional dependency
    from sklearn.manifold import TSNE

    views.append(("t-SNE", TSNE(2, perplexity=min(30, max(2, t * c // 4)),
                                init="pca", random_state=0).fit_transform(flat)))
  except ImportError:
    pass
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  written = []
  for name, xy in views:
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="viridis", s=10)
    fig.colorbar(sc, label=label)
    ax.set_title(f"{title} ({name})" if title else name, fontsize=9)
    fig.tight_layout()
    out = path if name == "PCA" else path.replace(".png", "_tsne.png")
    atomic.save_figure(fig, out, dpi=110)
    plt.close(fig)
    written.append(out)
  return written
