# eo_mmcl batch image: the README's install steps on a slim Python base, run as a non-root user.
#   docker build -t eo_mmcl .                     (torch from the package index: CUDA-enabled)
#   docker build -t eo_mmcl:cpu --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> .
#   docker run --rm -v "$PWD/runs:/opt/eo_mmcl/runs" eo_mmcl run pipelines/demo.yaml
FROM python:3.11-slim

# Selects the torch build: empty = the default index (CUDA wheels on Linux), or a CPU index.
ARG TORCH_INDEX_URL=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 eo

WORKDIR /opt/eo_mmcl
COPY --chown=eo:eo . /opt/eo_mmcl
USER eo

# The README's install steps ("What the install does"), one RUN each.
RUN python3 -m venv .venv
RUN .venv/bin/python -m pip install --upgrade pip
RUN .venv/bin/python -m pip install torch==2.14.1 torchvision==0.29.1 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
RUN .venv/bin/python -m pip install -e '.[dev]'

ENV PATH="/opt/eo_mmcl/.venv/bin:${PATH}"
# Data in, runs out: mount host folders here.
VOLUME ["/data", "/opt/eo_mmcl/runs"]
ENTRYPOINT ["eo-mmcl"]
CMD ["--help"]
