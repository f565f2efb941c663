# ruff: noqa: E501 - one published hash per line, each with the secret scanner's pragma
"""RFC 6962 (SHA-256) Merkle tree test vectors, as published by Certificate Transparency.

Origin: github.com/transparency-dev/merkle (Apache-2.0), testonly/constants.go @
582a6ad190b6848f1d26f8bf08ddef29955d9db1 (leaves, roots) and proof/verify_test.go @
02194e9afb6c1d95b5381350007963aa70fff472 (inclusion and consistency proofs). Leaf
indices here are 0-based (verify_test.go lists inclusion leaves 1-based). Each hash
carries the secret scanner's allowlist pragma: these are public test vectors.
"""

from __future__ import annotations

LEAVES_HEX = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
EMPTY_ROOT = (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # pragma: allowlist secret
)
LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",  # pragma: allowlist secret
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",  # pragma: allowlist secret
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",  # pragma: allowlist secret
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",  # pragma: allowlist secret
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",  # pragma: allowlist secret
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",  # pragma: allowlist secret
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",  # pragma: allowlist secret
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",  # pragma: allowlist secret
]
ROOTS_BY_SIZE = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",  # pragma: allowlist secret
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",  # pragma: allowlist secret
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",  # pragma: allowlist secret
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",  # pragma: allowlist secret
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",  # pragma: allowlist secret
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",  # pragma: allowlist secret
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",  # pragma: allowlist secret
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",  # pragma: allowlist secret
}
INCLUSION: list[tuple[int, int, list[str]]] = [  # (index, tree size, proof)
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",  # pragma: allowlist secret
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",  # pragma: allowlist secret
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",  # pragma: allowlist secret
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",  # pragma: allowlist secret
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",  # pragma: allowlist secret
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",  # pragma: allowlist secret
        ],
    ),
    (
        2,
        3,
        [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",  # pragma: allowlist secret
        ],
    ),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",  # pragma: allowlist secret
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",  # pragma: allowlist secret
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",  # pragma: allowlist secret
        ],
    ),
]
CONSISTENCY: list[tuple[int, int, list[str]]] = [  # (size1, size2, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",  # pragma: allowlist secret
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",  # pragma: allowlist secret
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",  # pragma: allowlist secret
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",  # pragma: allowlist secret
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",  # pragma: allowlist secret
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",  # pragma: allowlist secret
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",  # pragma: allowlist secret
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",  # pragma: allowlist secret
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",  # pragma: allowlist secret
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",  # pragma: allowlist secret
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",  # pragma: allowlist secret
        ],
    ),
]
