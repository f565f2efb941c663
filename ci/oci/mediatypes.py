"""The media types the toolkit writes (OCI) and accepts from registries (OCI and Docker v2)."""

from __future__ import annotations

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

MANIFEST_TYPES = (MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_LIST)
"""Every manifest media type we ask a registry for and accept in a layout."""
INDEX_TYPES = (INDEX, DOCKER_LIST)
"""The ones that list other manifests rather than a config and layers."""
