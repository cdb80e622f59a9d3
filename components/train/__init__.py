"""Training building blocks. So far: the EfficientNet-Lite0 backbone with its shipped ImageNet
weights (`backbone.py`); the grader heads, the training loop and the detector follow in the
train issue."""
