"""Small, real training runs on data that ships with the dependencies (workstation side), one
module per trainer: :mod:`.digits` (LeNet-5), :mod:`.siamese` (triplet loss), :mod:`.yolo`."""
