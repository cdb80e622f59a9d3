"""The vision core every stage stands on (DESIGN.md): photos decoded and turned upright
(`photos.py`), the card found and its centering measured (`centering.py`), the card rubric that
labels and grades (`rubric.py`), the one preprocessing (`prepare.py`), labels as annotation
tools export them (`labels.py`), an exported graph read without PyTorch (`graph.py`) and run on
photos (`models.py`), conformal grade sets (`conformal.py`), agreement figures
(`agreement.py`), image properties (`properties.py`) and the task types each stage finds its
plugin for (`tasks.py`). Stages import it; it imports no stage."""
