"""Registered model names, version tags and stages (DESIGN.md, "Registry states")."""

GRADER = "card-grader"
DETECTOR = "defect-detector"

TAG_DATA_VERSION = "data_version"
TAG_GIT_SHA = "git_sha"
TAG_STAGE = "stage"

# `gate.<name>` = pass / fail, written by evaluation.
GATE_PREFIX = "gate."

# A fresh version starts here; evaluation and promotion move it on.
STAGE_CANDIDATE = "candidate"
# A candidate that failed a gate of its evaluation.
STAGE_REJECTED = "rejected"
