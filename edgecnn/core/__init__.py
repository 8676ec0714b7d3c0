"""The low room: what every other room shares and nothing else imports into. Error types (each with its
exit code), data folders, the atomic writer, ROC/AP/mAP, video captures and writers, the model-file
reader and validator, the standard TFLite metadata, the one preprocessing spec, detection geometry and
the interpreter choice. numpy and OpenCV only: it runs on the device as it is."""
