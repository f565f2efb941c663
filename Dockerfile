# The bot4 engine image for Docker users: the same locked wheels on the same Debian base,
# installed at the same paths, running as the same non-root user as the hermetic build
# (`python -m ci.image build`, docs/image.md), which is what releases ship.
#
# Both bases are pinned by digest and have no default (no registry is assumed):
#   BUILDER  any CPython 3.11 image with pip, e.g. python:3.11-slim-bookworm@sha256:…
#   BASE     the engine image's Debian layer (python3.11, no pip), e.g. REGISTRY/bot4-base@sha256:…
# Build the engine wheel first (into dist/), then:
#   docker build --build-arg BUILDER=…@sha256:… --build-arg BASE=…@sha256:… -t bot4 .
ARG BUILDER
ARG BASE

FROM ${BUILDER} AS wheels
WORKDIR /src
COPY locks/runtime.txt ./
COPY dist/ ./dist/
# The locked wheels with their hashes (nothing unpinned, no resolver), then the engine's
# own wheel; console scripts get the base's interpreter, as the hermetic build writes them.
RUN python3.11 -m pip install --no-cache-dir --no-compile --only-binary=:all: \
        --require-hashes --no-deps --target /install -r runtime.txt \
 && python3.11 -m pip install --no-cache-dir --no-compile --no-deps --target /install \
        dist/bot4-*.whl \
 && sed -i '1s|^#!.*|#!/usr/bin/python3.11|' /install/bin/bot4 \
 && mv /install/bin /scripts

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
