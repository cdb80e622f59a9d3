"""Training: the EfficientNet-Lite0 backbone with its shipped ImageNet weights (`backbone.py`),
the severity grader (`severity.py`) and the rubric it grades by (`rubric.py`), cumulative
ordinal outputs (`ordinal.py`), the classifier (`model.py`), the cached training loop
(`loop.py`, `trainer.py`) and the YOLO detector. The one preprocessing is the vision core's
(`components/vision/prepare.py`): serving runs it too."""
