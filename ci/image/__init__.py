"""The engine's hermetic OCI image: locked Debian packages and wheels → layers → OCI layout.

No daemon, no RUN steps: every input is pinned by sha256 in ``image.lock`` and fetched
into a content-addressed cache; every writer is deterministic, so the same lock and the
same commit give the same manifest digest on any machine.
"""
