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
