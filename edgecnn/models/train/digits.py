"""LeNet-5 on scikit-learn's digits: the small real classifier the convert tests quantize."""

from __future__ import annotations

import numpy as np

from edgecnn.calibration.datasets import ImageSet, digits_images
from edgecnn.core.preprocess import PreprocessSpec
from edgecnn.models._tf import keras
from edgecnn.models.registry import build

DIGITS_SPEC = PreprocessSpec.for_input(32, 32, 1, "unit", labels=[str(i) for i in range(10)])


def digits_split(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn digits as (train ImageSet, test ImageSet), a fixed shuffled split."""
    data = digits_images(None, seed)
    n_test = int(len(data.images) * test_fraction)
    test = ImageSet(data.images[:n_test], data.source, 0, data.labels[:n_test], data.class_names)
    train = ImageSet(data.images[n_test:], data.source, 0, data.labels[n_test:], data.class_names)
    return train, test


def train_lenet_digits(epochs: int = 8, seed: int = 0, classic: bool = True, verbose: int = 0):
    """LeNet-5 trained on scikit-learn's digits through the one preprocessing spec.

    Returns (model, test ImageSet, test accuracy). A few seconds on two cores.
    """

    keras.utils.set_random_seed(seed)
    train, test = digits_split(seed=seed)
    x = DIGITS_SPEC.apply_batch(train.images)
    y = np.asarray(train.labels)
    model = build("lenet5", classic=classic)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=verbose, validation_split=0.0)
    xt = DIGITS_SPEC.apply_batch(test.images)
    acc = float((model.predict(xt, verbose=0).argmax(1) == np.asarray(test.labels)).mean())
    return model, test, acc
