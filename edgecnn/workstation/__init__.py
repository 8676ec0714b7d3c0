"""The workstation room: jobs that use every other room, TensorFlow's side included: making a bundle,
converting FaceNet and the style network once, the demo, reports and the benchmark matrix (local and
on Ray). The CLI (``edgecnn.cli``) sits beside it in the same room."""
