"""Pure building blocks of the grading service: uploads, batching, logs, routing, metrics."""
