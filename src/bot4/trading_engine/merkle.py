"""RFC 6962 / RFC 9162 Merkle tree: leaf and node hashing, proofs and their verification.

The audit log's records are the leaves. A signed checkpoint commits to the root of the
first ``size`` leaves; an inclusion proof shows one record is under that root and a
consistency proof shows a larger tree extends a smaller one (the log only grew). Pure
functions over SHA-256 digests so that a third party can check proofs with this module
alone (or with any Certificate Transparency library: the hashing is the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

_sha256 = hashlib.sha256
EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the leaf prefix keeps a leaf from posing as a node."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The roots of the perfect subtrees of a growing tree: O(log n) state, O(1) amortised append.

    This is what the writer keeps in memory so that a checkpoint costs ``log n`` hashes,
    not a pass over the whole log.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._stack: list[bytes] = []
        self.size = 0
        for h in leaves:
            self.append(h)

    def append(self, leaf: bytes) -> None:
        """Add one leaf *hash*."""
        stack = self._stack
        stack.append(leaf)
        self.size = n = self.size + 1
        while not n & 1:  # node_hash inlined: this runs once per audit record on average
            right = stack.pop()
            stack[-1] = _sha256(b"\x01" + stack[-1] + right).digest()
            n >>= 1

    def root(self) -> bytes:
        """The tree head of every leaf appended so far (``EMPTY_ROOT`` for none)."""
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        """An independent copy (to look at a root without disturbing the writer)."""
        other = Frontier()
        other._stack = list(self._stack)
        other.size = self.size
        return other


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    return Frontier(hashes).root()


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1, for the leaf at ``index`` among ``hashes``."""
    if not 0 <= index < len(hashes):
        raise ValueError(f"leaf index {index} is outside a tree of size {len(hashes)}")
    return _path(index, hashes, 0, len(hashes))


def _path(m: int, hashes: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, hashes, lo, lo + k), root(hashes[lo + k : hi])]
    return [*_path(m - k, hashes, lo + k, hi), root(hashes[lo : lo + k])]


def consistency_proof(hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2: the tree of ``hashes`` extends its first ``size1``."""
    n = len(hashes)
    if not 0 <= size1 <= n:
        raise ValueError(f"size {size1} is outside a tree of size {n}")
    if size1 in (0, n):
        return []
    return _subproof(size1, hashes, 0, n, complete=True)


def _subproof(m: int, hashes: Sequence[bytes], lo: int, hi: int, *, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [root(hashes[lo:hi])]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes, lo, lo + k, complete=complete), root(hashes[lo + k : hi])]
    return [*_subproof(m - k, hashes, lo + k, hi, complete=False), root(hashes[lo : lo + k])]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether ``leaf`` (a leaf hash) is at ``index`` under ``expected_root``.

    RFC 9162 §2.1.3, verifying an inclusion proof.
    """
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    """Whether the tree (size2, root2) extends the tree (size1, root1).

    RFC 9162 §2.1.4, verifying a consistency proof.
    """
    if not 0 <= size1 <= size2 or any(len(p) != HASH_SIZE for p in proof):
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2
