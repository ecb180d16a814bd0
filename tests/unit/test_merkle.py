"""RFC 9162 Merkle tree hashes and inclusion proofs (what audit checkpoints commit to)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from bus.core import merkle

# The leaves and tree heads of Certificate Transparency's reference tests (RFC 6962/9162 trees).
CT_LEAVES = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_tree_heads_match_the_reference_vectors():
    assert merkle.root([]).hex() == hashlib.sha256(b"").hexdigest()
    for n, expected in enumerate(CT_ROOTS, start=1):
        assert merkle.root(CT_LEAVES[:n]).hex() == expected


def test_a_known_audit_path():
    """PATH(0, D[8]) of the reference tree: three siblings, leaf side first."""
    path = merkle.inclusion_proof(0, CT_LEAVES)
    assert path == [merkle.leaf_hash(CT_LEAVES[1]), merkle.root(CT_LEAVES[2:4]), merkle.root(CT_LEAVES[4:8])]


leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@given(leaf_lists, st.data())
def test_every_leaf_proves_its_place_and_nothing_else_does(leaves, data):
    root = merkle.root(leaves)
    all_proofs = merkle.proofs(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = merkle.inclusion_proof(index, leaves)
    assert path == all_proofs[index]
    assert merkle.verify_inclusion(leaves[index], index, len(leaves), path, root)
    other = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != leaves[index]))
    assert not merkle.verify_inclusion(other, index, len(leaves), path, root)
    if len(leaves) > 1:
        wrong = data.draw(st.integers(0, len(leaves) - 1).filter(lambda i: i != index))
        assert not merkle.verify_inclusion(leaves[index], wrong, len(leaves), path, root) or \
            leaves[wrong] == leaves[index]
    if path:
        bent = [*path[:-1], bytes(32)]
        assert not merkle.verify_inclusion(leaves[index], index, len(leaves), bent, root)


def test_out_of_range_and_malformed_proofs_fail():
    leaves = CT_LEAVES[:5]
    root = merkle.root(leaves)
    assert not merkle.verify_inclusion(leaves[0], 5, 5, merkle.inclusion_proof(0, leaves), root)
    assert not merkle.verify_inclusion(leaves[0], 0, 5, [b"short"], root)
