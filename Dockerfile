# Assay service image: python:3.11-slim + the system libraries WeasyPrint needs, installed from the
# same constraints (lock) file as `make run` / `make test`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DO_NOT_TRACK=1 ASSAY_DATA_DIR=/data ASSAY_HOST=0.0.0.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b \
      libharfbuzz-subset0 libfontconfig1 fonts-dejavu-core libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY service ./service
COPY reports ./reports
COPY fixtures ./fixtures
# editable, so that reports/ and fixtures/ (templates, `assay demo`) resolve from /app as in a checkout
RUN pip install --no-cache-dir -c constraints.txt -e . --config-settings editable_mode=compat && useradd --system --home /data assay && mkdir -p /data && chown assay /data
USER assay
VOLUME /data
EXPOSE 8000
CMD ["assay", "serve"]
