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

# Aliases (DESIGN.md): `champion` answers clients, `challenger` is the version in shadow or
# canary, `previous` is the champion before the current one, the target of a rollback.
ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"
ALIAS_PREVIOUS = "previous"

# The release of a candidate, in order (model_registry.stages.TRANSITIONS holds the moves).
# Answers nobody; its predictions are logged beside the champion's.
STAGE_SHADOW = "shadow"
# Answers a share of requests (tag `canary_share`).
STAGE_CANARY = "canary"
# Waits for a reviewer's `approval` tag.
STAGE_AWAITING_APPROVAL = "awaiting_approval"
# Holds the `champion` alias.
STAGE_CHAMPION = "champion"
# Stopped after it reached clients: by the automatic shadow/canary rollback, or a champion
# replaced by `gradeline rollback`. `rejected` (above) also ends a challenger a reviewer refused.
STAGE_ROLLED_BACK = "rolled_back"
# A champion replaced by a newer one in good order: it may come back by a rollback.
STAGE_RETIRED = "retired"

# A reviewer's decision on a version awaiting approval; they may set it in the MLflow UI.
TAG_APPROVAL = "approval"
APPROVED = "approved"
REJECTED = "rejected"
TAG_APPROVED_BY = "approved_by"

# The share of requests the challenger answers during canary, e.g. "0.05"; the serving process
# reads it.
TAG_CANARY_SHARE = "canary_share"

# `release.<step>.<figure>`: figures of the shadow and canary analyses (`release.shadow.agreement`,
# `release.canary_25.p99_ms`), so the reviewer reads them on the version page.
RELEASE_PREFIX = "release."

# The version's exported ONNX graph (logged by the evaluate flow) and the graph file's digest.
TAG_ONNX_URI = "onnx.model_uri"
TAG_ONNX_SHA256 = "onnx.sha256"
