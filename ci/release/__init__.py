"""Releasing the engine image: push to an OCI registry, sign (cosign-compatible and GPG
simple signing), attest (SBOM and SLSA provenance in DSSE envelopes), and deploy only
what verifies — by digest, hardened, under runc.

Each step is one module with one job; ``python -m ci.release <command>`` drives them.
"""
