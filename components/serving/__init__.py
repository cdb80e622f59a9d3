"""Pure building blocks of the grading service: uploads, image properties, batching, logs."""
