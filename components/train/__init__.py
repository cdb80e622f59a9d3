"""Training building blocks. So far: the EfficientNet-Lite0 backbone with its shipped ImageNet
weights (`backbone.py`) and CORN ordinal outputs for grades (`ordinal.py`); the grader model,
the training loop and the detector follow in the train issue."""
