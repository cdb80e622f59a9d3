"""The vision core every stage stands on (DESIGN.md): what is measured of an image the same way
in ingest, evaluation, serving and monitoring. Stages import it; it imports no stage."""
