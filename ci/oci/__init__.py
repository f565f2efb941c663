"""The OCI core both halves of the toolkit share: ``ci.image`` writes images with it and
``ci.release`` moves, signs and runs them with it, so a digest, a media type or a layout
means one thing in both. One file per concept, as in apko's ``pkg/build/oci``:

- ``mediatypes``: the media types we write and accept.
- ``digest``: ``sha256:`` content addresses and the canonical JSON they are taken over.
- ``descriptor``: a descriptor of a blob, and the annotation that names a tag.
- ``manifest``: a manifest as exact bytes, and what it references.
- ``index``: an image index document.
- ``layout``: the image-layout directory, read (hash-checked) and written (whole).
- ``runtime``: the OCI runtime (runc) that runs an unpacked image.
"""
