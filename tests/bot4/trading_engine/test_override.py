from __future__ import annotations

import base64

import pytest

from bot4.trading_engine.errors import GateConfigError
from bot4.trading_engine.override import (
    MAX_WINDOW_NS,
    OverrideKey,
    OverrideRejectedError,
    OverrideVerifier,
    issue,
)

KEY = OverrideKey(hmac_secret=b"k" * 32)


def token(**kw: object) -> str:
    args: dict[str, object] = {
        "order_id": "o1",
        "not_before_ns": 0,
        "not_after_ns": 100,
        "operator": "op",
        "reason": "why",
    }
    args.update(kw)
    return issue(KEY, **args)  # type: ignore[arg-type]


def test_key_validation() -> None:
    with pytest.raises(GateConfigError, match="at least 32 bytes"):
        OverrideKey(hmac_secret=b"short")
    with pytest.raises(GateConfigError, match="needs an HMAC secret"):
        OverrideKey()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"operator": " "}, "operator name and a reason"),
        ({"reason": ""}, "operator name and a reason"),
        ({"not_after_ns": 0}, "window must be positive"),
        ({"not_after_ns": MAX_WINDOW_NS + 1}, "at most one hour"),
    ],
)
def test_issue_validation(kw: dict[str, object], message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        token(**kw)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("nope", "not a bot4o1 token"),
        ("bot4o1.!!.!!", "corrupt"),
        ("bot4o1." + b64(b"[1]") + "." + b64(b"x"), "signature does not verify"),
    ],
)
def test_malformed_tokens(bad: str, message: str) -> None:
    with pytest.raises(OverrideRejectedError, match=message):
        OverrideVerifier(KEY).verify(bad, "o1", 1)


def test_claims_must_be_complete_object() -> None:
    import hashlib
    import hmac

    for body, message in ((b"[1]", "not an object"), (b'{"order_id": "o1"}', "incomplete")):
        sig = hmac.new(b"k" * 32, body, hashlib.sha256).digest()
        with pytest.raises(OverrideRejectedError, match=message):
            OverrideVerifier(KEY).verify(f"bot4o1.{b64(body)}.{b64(sig)}", "o1", 1)


def test_nonce_is_random_unless_given() -> None:
    assert token() != token()
    assert token(nonce="n") == token(nonce="n")


def test_claims_of_the_wrong_type_are_refused_even_when_signed() -> None:
    import hashlib
    import hmac
    import json

    good = {
        "order_id": "o1",
        "not_before_ns": 0,
        "not_after_ns": 100,
        "operator": "op",
        "reason": "why",
        "nonce": "n",
    }
    for name, value in (("not_after_ns", "100"), ("not_before_ns", True), ("order_id", 1)):
        body = json.dumps({**good, name: value}).encode()
        sig = hmac.new(b"k" * 32, body, hashlib.sha256).digest()
        with pytest.raises(OverrideRejectedError, match=f"claim {name} is not a"):
            OverrideVerifier(KEY).inspect(f"bot4o1.{b64(body)}.{b64(sig)}")


def test_a_backend_held_key_issues_and_a_public_key_checks() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    signing = OverrideKey(verify_key=private.public_key(), sign_with=private.sign)
    tok = issue(
        signing, order_id="o1", not_before_ns=0, not_after_ns=9, operator="a", reason="r", nonce="n"
    )
    checker = OverrideVerifier(OverrideKey(verify_key=private.public_key()))
    assert checker.inspect(tok).nonce == "n" and not checker.is_used("n")
    assert checker.verify(tok, "o1", 5).operator == "a" and checker.is_used("n")
    with pytest.raises(GateConfigError, match="only a public half"):
        issue(
            OverrideKey(verify_key=private.public_key()),
            order_id="o1",
            not_before_ns=0,
            not_after_ns=9,
            operator="a",
            reason="r",
        )
