# One image for every Gradeline process: the CLI (`gradeline serve`, `gradeline train`, ...), the
# MLflow and Prefect servers and the Prefect worker (infra/compose.yaml, infra/k8s).
#   docker build -t gradeline:dev .
FROM python:3.11-slim-bookworm

# OpenCV's shared libraries; git for DVC.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The lock first: code changes then reuse the dependency layer.
COPY pyproject.toml requirements.lock ./
RUN pip install --no-cache-dir "uv==0.13.9" \
    && uv pip sync --system --no-cache requirements.lock
COPY . .
RUN uv pip install --system --no-cache --no-deps -e . \
    && useradd --uid 10001 --create-home gradeline \
    && mkdir -p /var/lib/gradeline && chown gradeline /var/lib/gradeline

USER 10001
ENV GRADELINE_HOME=/var/lib/gradeline
EXPOSE 8080
ENTRYPOINT ["gradeline"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
