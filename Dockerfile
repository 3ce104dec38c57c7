# The clinical app: `biomarker serve` with the shipped model, on PostgreSQL when DATABASE_URL says so.
# One image for GPU and CPU hosts: the PyPI torch wheel carries its CUDA runtime and `--device auto` falls back to
# the CPU when the container sees no GPU (see docker-compose.yml and docs/store.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BIOMARKER_HOME=/data

# libsndfile and sox decode the audio formats the quality gate accepts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 sox libsox-fmt-all \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 biomarker \
    && mkdir -p /data && chown biomarker:biomarker /data

WORKDIR /opt/biomarker
# Dependencies first, so editing the code does not reinstall torch.
COPY pyproject.toml README.md ./
COPY biomarker ./biomarker
# Editable: `biomarker serve` finds app/ and pretrained/ beside the package, as in a checkout.
RUN pip install -e ".[postgres]"
COPY app ./app
COPY pretrained ./pretrained

USER biomarker
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4)"
CMD ["biomarker", "serve", "--address", "0.0.0.0", "--port", "8501", "--device", "auto"]
