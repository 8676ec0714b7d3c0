"""The TensorFlow side: Keras / SavedModel / frozen graph -> ``.tflite`` at each precision.

TensorFlow is imported when a conversion starts, not when this package is imported.
"""


def convert(source, opts=None, **kw):
    from edgecnn.converters.convert import convert as _convert

    return _convert(source, opts, **kw)


__all__ = ["convert"]
