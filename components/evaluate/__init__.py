"""Evaluation building blocks: agreement with the expert panel and its human bar
(`agreement.py`), temperature scaling and calibration error (`calibration.py`), conformal grade
sets (`conformal.py`), ONNX export, int8 and parity (`export.py`, `parity.py`, `tensorrt.py`),
reading an exported graph without PyTorch, as serving does (`graph.py`),
latency (`latency.py`), the detector's evaluation (`detector.py`), gates and the report. The
grader and the detector are each evaluated end to end by `grader.py` and `detector_model.py`."""
