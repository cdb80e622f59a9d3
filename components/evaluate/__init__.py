"""Evaluation building blocks: agreement with the expert panel and its human bar
(`agreement.py`), temperature scaling and calibration error (`calibration.py`), ONNX export,
int8 and parity (`export.py`, `parity.py`, `tensorrt.py`), the centering measurement's accuracy
on the factory's truth (`centering.py`), latency (`latency.py`), the detector's evaluation
(`detector.py`), gates and the report. Conformal sets and the exported graph read without
PyTorch are the vision core's, since serving reads them too. The
grader and the detector are each evaluated end to end by `grader.py` and `detector_model.py`."""
