"""The Merkle tree against RFC 6962's published vectors, and its proofs against random trees."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.trading_engine import merkle

V = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("rfc6962_vectors.py"))))
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in V.LEAVES_HEX]


def h(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_leaf_hashes_and_roots_match_the_published_vectors() -> None:
    assert [x.hex() for x in LEAVES] == V.LEAF_HASHES
    assert merkle.root([]).hex() == V.EMPTY_ROOT == merkle.EMPTY_ROOT.hex()
    for size, expected in V.ROOTS_BY_SIZE.items():
        assert merkle.root(LEAVES[:size]).hex() == expected


def test_inclusion_proofs_match_the_published_vectors() -> None:
    for index, size, hexes in V.INCLUSION:
        proof = h(hexes)
        assert merkle.inclusion_proof(LEAVES[:size], index) == proof
        root = bytes.fromhex(V.ROOTS_BY_SIZE[size])
        assert merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
        # The corruptions the reference test suite tries must all fail.
        assert not merkle.verify_inclusion(LEAVES[index], index + 1, size, proof, root)
        assert not merkle.verify_inclusion(LEAVES[index], index, size * 2, proof, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"x"), index, size, proof, root)
        assert not merkle.verify_inclusion(LEAVES[index], index, size, [*proof, root], root)
        assert not merkle.verify_inclusion(LEAVES[index], index, size, [root, *proof], root)
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
            assert not merkle.verify_inclusion(LEAVES[index], index, size, bad, root)


def test_consistency_proofs_match_the_published_vectors() -> None:
    roots = V.ROOTS_BY_SIZE
    for size1, size2, hexes in V.CONSISTENCY:
        proof = h(hexes)
        assert merkle.consistency_proof(LEAVES[:size2], size1) == proof
        root1, root2 = bytes.fromhex(roots[size1]), bytes.fromhex(roots[size2])
        assert merkle.verify_consistency(size1, size2, proof, root1, root2)
        if proof:
            assert not merkle.verify_consistency(size1, size2, proof, root2, root1)
            assert not merkle.verify_consistency(size1 + 1, size2, proof, root1, root2)
            assert not merkle.verify_consistency(size1, size2, proof[:-1], root1, root2)
            assert not merkle.verify_consistency(size1, size2, [*proof, root1], root1, root2)
            assert not merkle.verify_consistency(size1, size2, [], root1, root2)


def test_edge_cases() -> None:
    some = merkle.leaf_hash(b"a")
    assert merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    assert merkle.verify_consistency(0, 3, [], merkle.EMPTY_ROOT, some)
    assert not merkle.verify_consistency(2, 1, [], some, some)
    assert not merkle.verify_consistency(1, 1, [some], some, some)
    assert not merkle.verify_inclusion(some, 0, 0, [], some)
    assert not merkle.verify_inclusion(some, 0, 1, [b"short"], some)
    for bad in (-1, 3):
        try:
            merkle.inclusion_proof([some] * 3, bad)
        except ValueError:
            pass
        else:
            raise AssertionError("out-of-range index accepted")
    try:
        merkle.consistency_proof([some], 2)
    except ValueError:
        pass
    else:
        raise AssertionError("out-of-range size accepted")


trees = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(trees, st.data())
def test_every_proof_of_a_random_tree_verifies_and_a_wrong_leaf_does_not(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [merkle.leaf_hash(d) for d in data]
    n = len(hashes)
    frontier = merkle.Frontier()
    for i, x in enumerate(hashes, start=1):
        frontier.append(x)
        assert frontier.root() == merkle.root(hashes[:i])
    head = merkle.root(hashes)
    index = draw.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(hashes, index)
    assert merkle.verify_inclusion(hashes[index], index, n, proof, head)
    assert not merkle.verify_inclusion(merkle.leaf_hash(data[index] + b"!"), index, n, proof, head)
    size1 = draw.draw(st.integers(0, n))
    cproof = merkle.consistency_proof(hashes, size1)
    old = merkle.root(hashes[:size1])
    assert merkle.verify_consistency(size1, n, cproof, old, head)
    if 0 < size1 < n:
        changed = [*hashes[: size1 - 1], merkle.leaf_hash(b"forged"), *hashes[size1:]]
        assert not merkle.verify_consistency(size1, n, cproof, old, merkle.root(changed))
