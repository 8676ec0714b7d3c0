"""Siamese / triplet face-embedding networks (Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015)."""

from __future__ import annotations

import numpy as np

from edgecnn.core.errors import InputError
from edgecnn.models._tf import keras, layers
from edgecnn.models.registry import get_spec, register_model

DEFAULT_BACKBONE_OPTIONS = {"mobilenet_v2": {"alpha": 0.35}}


@register_model(
    "siamese",
    family="siamese",
    paper="Schroff, Kalenichenko & Philbin, FaceNet: A Unified Embedding for Face Recognition, CVPR 2015",
    default_input=(96, 96, 3),
)
def siamese(input_shape=None, backbone="mobilenet_v2", embedding_dim=128, backbone_options=None):
    """Embedding network: any registered backbone (without its classifier), global average pooling,
    a linear projection to ``embedding_dim`` and L2 normalisation onto the unit sphere.

    Two images are compared by the distance of their embeddings (:func:`pair_distance`); the network
    is trained with the triplet loss (:func:`triplet_loss`) through :func:`triplet_model`, whose three
    branches share these weights.
    """
    if backbone in ("siamese", "yolo"):
        raise InputError(f"backbone must be a classification network, not {backbone!r}")
    if not isinstance(embedding_dim, int) or embedding_dim < 2:
        raise InputError(f"embedding_dim must be an integer >= 2, got {embedding_dim!r}")
    spec = get_spec(backbone)
    options = dict(DEFAULT_BACKBONE_OPTIONS.get(backbone, {}) if backbone_options is None else backbone_options)
    shape = tuple(input_shape) if input_shape is not None else (96, 96, spec.default_input[2])
    base = spec.builder(**spec.fixed, **options, input_shape=shape, include_top=False)
    x = base.output
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="embedding_pool")(x)
    x = layers.Dense(embedding_dim, name="embedding_projection")(x)
    x = layers.UnitNormalization(name="embedding")(x)
    return keras.Model(base.input, x, name=f"siamese_{backbone}")


def triplet_model(embedder):
    """Anchor, positive and negative images through one shared embedder -> (batch, 3, dim)."""
    shape = embedder.input_shape[1:]
    inputs = [keras.Input(shape, name=n) for n in ("anchor", "positive", "negative")]
    embeddings = [embedder(t) for t in inputs]
    stacked = layers.Concatenate(axis=1, name="triplet")([layers.Reshape((1, -1))(e) for e in embeddings])
    return keras.Model(inputs, stacked, name="triplet")


def triplet_loss(margin: float = 0.2):
    """FaceNet's triplet loss on (batch, 3, dim) outputs: max(|a-p|^2 - |a-n|^2 + margin, 0)."""

    def loss(_y_true, y_pred):
        a, p, n = y_pred[:, 0], y_pred[:, 1], y_pred[:, 2]
        pos = keras.ops.sum(keras.ops.square(a - p), axis=-1)
        neg = keras.ops.sum(keras.ops.square(a - n), axis=-1)
        return keras.ops.mean(keras.ops.maximum(pos - neg + margin, 0.0))

    loss.__name__ = f"triplet_loss_{margin:g}"
    return loss


def batch_hard_triplet_loss(margin: float = 0.2):
    """Batch-hard triplet loss (Hermans et al., 2017) on (batch, dim) embeddings with integer labels:
    for each anchor, its farthest positive and nearest negative in the batch."""

    def loss(y_true, y_pred):
        ops = keras.ops
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        sq = ops.sum(ops.square(y_pred), axis=1)
        d2 = ops.maximum(sq[:, None] - 2.0 * ops.matmul(y_pred, ops.transpose(y_pred)) + sq[None, :], 0.0)
        d = ops.sqrt(d2 + 1e-12)
        same = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32")
        eye = ops.eye(ops.shape(labels)[0])
        pos = ops.max(d * (same - eye), axis=1)
        neg = ops.min(d + 1e3 * same, axis=1)
        return ops.mean(ops.maximum(pos - neg + margin, 0.0))

    loss.__name__ = f"batch_hard_triplet_loss_{margin:g}"
    return loss


def pair_distance(e1, e2) -> np.ndarray:
    """Euclidean distance between embeddings (rows); for unit vectors it lies in [0, 2]."""
    e1, e2 = np.asarray(e1, np.float32), np.asarray(e2, np.float32)
    return np.linalg.norm(e1 - e2, axis=-1)
