"""The device room: everything that runs on a Raspberry Pi or a phone-class board with numpy, OpenCV and
LiteRT only (never TensorFlow): the model loader and runtime, detectors, the overlay, faces and the
gallery, the camera loop, latency profiling, bundle reading and style transfer."""
