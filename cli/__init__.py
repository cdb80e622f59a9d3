"""The `gradeline` command (`main.py`), one module per user group: data and training in `main`,
releases and reviewers' decisions (`release.py`), monitoring and on-call (`monitor.py`), API keys
(`keys.py`), MLflow reviewers' accounts (`reviewers.py`), settings (`config.py`), and the local
stack (`stack.py` with its process supervisor). Flows never import it; it imports everything."""
