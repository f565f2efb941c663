# The bot4 engine image for Docker users: the same locked wheels on the same Debian base,
# installed at the same paths, running as the same non-root user as the hermetic build
# (`python -m ci.image build`, docs/image.md), which is what releases ship.
#
# Both bases are pinned by digest and have no default (no registry is assumed):
#   BUILDER  any CPython 3.11 image with pip, e.g. python:3.11-slim-bookworm@sha256:…
#            (`python -m ci.release dockerfile-check` uses our base + the pinned pip wheel)
#   BASE     the engine image's Debian layer (python3.11, no pip, no shell)
# The context is made by `python -m ci.release docker-context DIR` (docs/release.md):
# requirements.txt (image.lock's wheels and the engine wheel, each with its sha256),
# wheels/ and dist/. Then:
#   docker build --network=none --build-arg BUILDER=…@sha256:… --build-arg BASE=…@sha256:… DIR
ARG BUILDER
ARG BASE

FROM ${BUILDER} AS wheels
WORKDIR /src
COPY requirements.txt ./
COPY wheels/ ./wheels/
COPY dist/ ./dist/
# Every wheel by exact file hash from the context's wheelhouse: no index, no resolver,
# nothing unpinned, no network. Exec form: the steps need no shell.
RUN ["python3.11", "-m", "pip", "install", "--no-cache-dir", "--no-compile", "--no-index", "--find-links=/src/wheels", "--only-binary=:all:", "--require-hashes", "--no-deps", "--root-user-action=ignore", "--target=/install", "-r", "requirements.txt"]
# The console script gets the base's interpreter, as the hermetic build writes it.
RUN ["python3.11", "-c", "import os, pathlib, shutil; s = pathlib.Path('/install/bin/bot4').read_bytes().split(b'\\n', 1)[1]; pathlib.Path('/scripts').mkdir(); pathlib.Path('/scripts/bot4').write_bytes(b'#!/usr/bin/python3.11\\n' + s); os.chmod('/scripts/bot4', 0o755); shutil.rmtree('/install/bin')"]

FROM ${BASE}
COPY --from=wheels /install /usr/local/lib/python3.11/dist-packages
COPY --from=wheels /scripts/bot4 /usr/local/bin/bot4
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.title="bot4"
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/bot4"]
CMD ["doctor"]
