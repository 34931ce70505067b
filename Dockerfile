# The patient-records service. Two stages: a builder that installs the locked dependencies and
# the project into a virtual environment, and a slim runtime that copies only that environment.
# The base image is a build argument so that offline tests can pass a local stand-in.
# checkov:skip=CKV_DOCKER_7: the base is a build argument whose default is pinned (3.12-slim); checkov cannot see through the argument
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
RUN python3 -m venv /opt/venv
COPY requirements/runtime.lock requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY src ./src
# binutils gives `strip` (python:3.12-slim has none); it stays in this stage only, so its
# version is the base release's (not pinned: a pin breaks the build when Debian updates it).
# hadolint ignore=DL3008
RUN command -v strip >/dev/null \
 || (apt-get update && apt-get install --yes --no-install-recommends binutils \
     && rm -rf /var/lib/apt/lists/*)
# Dependencies only from the hash-locked file; then the project itself, without resolving.
# The clean-up keeps the project's layers inside their budget (README, "In a container"):
# no bytecode (about 30 MB; Python compiles what it imports), no test helpers, type stubs or
# dialects that are never imported, only the FHIR R4B models (fhir.resources also ships R5 at
# its top level and STU3; R4B imports neither), and shared objects without their debug symbols.
# The largest pure-Python packages that read no files of their own are imported from one
# compressed zip (a .pth file puts it on sys.path): their sources take a fifth of the space,
# and tracebacks still show their lines.
RUN /opt/venv/bin/pip install --no-compile --require-hashes -r requirements/runtime.lock \
 && /opt/venv/bin/pip install --no-compile --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && rm -rf "$site"/sqlalchemy/testing "$site"/alembic/testing "$site"/pydantic/v1 \
           "$site"/sqlalchemy/dialects/mysql "$site"/sqlalchemy/dialects/oracle \
           "$site"/sqlalchemy/dialects/mssql "$site"/fhir/resources/STU3 "$site"/mako/testing \
 && find "$site"/fhir/resources -maxdepth 1 -name '*.py' ! -name '__init__.py' -delete \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} + \
 && find "$site" -name '*.pyi' -delete \
 && find /opt/venv -name '*.so*' -type f -exec strip --strip-unneeded {} + \
 && /opt/venv/bin/python -c 'import os, shutil, sys, zipfile; os.chdir(sys.argv[1]); \
      z = zipfile.ZipFile("zipped-packages.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9); \
      [z.write(os.path.join(d, f)) for p in sys.argv[2:] for d, _, fs in os.walk(p) for f in fs]; \
      z.close(); [shutil.rmtree(p) for p in sys.argv[2:]]' "$site" click dns email_validator \
      fhir fhir_core idna jinja2 mako prometheus_client pydantic pydantic_settings \
 && echo zipped-packages.zip > "$site"/zipped-packages.pth \
 && /opt/venv/bin/python -c 'import healthcare.cli, healthcare.fhir.resources'

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
ARG VERSION=0.1.0
ARG SOURCE_URL=https://example.invalid/healthcare
LABEL org.opencontainers.image.title="healthcare" \
      org.opencontainers.image.description="Patient records for a clinic: JSON API over SQLite or PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HEALTHCARE_DATA_DIR=/data \
    PORT=9000
RUN groupadd --system --gid "${UID}" healthcare \
 && useradd --system --uid "${UID}" --gid "${UID}" --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin healthcare \
 && mkdir -p /data /backups /audit \
 && chown healthcare:healthcare /data /backups /audit
COPY --from=builder /opt/venv /opt/venv
USER ${UID}:${UID}
WORKDIR /data
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/readyz', timeout=2)"]
ENTRYPOINT ["healthcare"]
CMD ["serve"]
