"""Trained quantization (Deep Compression §3): k-means weight sharing and centroid fine-tuning.

- :func:`kmeans_1d` / :func:`lloyd_bruteforce` / :func:`kmeans_1d_optimal`: 1-D k-means.
- :func:`share_weights` -> ``{tensor_name: Codebook}``: per-layer weight sharing.
- :class:`SharedWeights`: centroids as trainable parameters (Eq. 3).

Importing this package does not import torch.
"""

from __future__ import annotations

from .bruteforce import lloyd_bruteforce
from .clusters import KMeansResult
from .finetune import SharedWeights
from .kmeans import kmeans_1d
from .optimal import kmeans_1d_optimal
from .sharing import DEFAULT_BITS, Codebook, cluster_weight, share_weights

__all__ = [
    "DEFAULT_BITS",
    "Codebook",
    "KMeansResult",
    "SharedWeights",
    "cluster_weight",
    "kmeans_1d",
    "kmeans_1d_optimal",
    "lloyd_bruteforce",
    "share_weights",
]
