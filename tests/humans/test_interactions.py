"""Slack interaction requests: signature verification, payload parsing, the allow-list."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from remediator.notify.interactions import (
    BadSignature,
    MalformedInteraction,
    MissingSignature,
    NotAllowed,
    ReplayGuard,
    SignatureError,
    StaleRequest,
    check_allowed,
    message_refusal,
    parse_interaction,
    slack_signature,
    verify_slack_signature,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_785_000_000.0


def click(action_id: str = "remediator_approve", value: str = "apr-42",
          **overrides: Any) -> bytes:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE", "domain": "fake"},
        "channel": {"id": "C0001OPSALE", "name": "ops-alerts"},
        "container": {"type": "message", "message_ts": "1700000003.000003",
                      "channel_id": "C0001OPSALE"},
        "message": {"ts": "1700000003.000003", "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T0FAKE/1/abc",
        "actions": [{"type": "button", "action_id": action_id, "value": value,
                     "block_id": "approval:apr-42", "action_ts": "1700000010.1"}],
    }
    payload.update(overrides)
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_valid_signature_passes() -> None:
    body = click()
    ts = str(int(NOW) - 10)
    verify_slack_signature(SECRET, ts, body, slack_signature(SECRET, ts, body), NOW)


def test_slack_documented_example() -> None:
    # The worked example of Slack's "Verifying requests from Slack" guide.
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    verify_slack_signature(SECRET, "1531420618", body, signature, now=1531420618 + 60)


@pytest.mark.parametrize(("change", "error"), [
    ({"signature": "v0=" + "0" * 64}, BadSignature),                    # forged
    ({"secret": "another-secret"}, BadSignature),                        # wrong secret
    ({"body": click(value="apr-43")}, BadSignature),                     # tampered body
    ({"signature": ""}, MissingSignature),
    ({"timestamp": ""}, MissingSignature),
    ({"timestamp": "yesterday"}, StaleRequest),
])
def test_bad_requests_are_refused(change: dict[str, Any], error: type[Exception]) -> None:
    body, ts = click(), str(int(NOW))
    args = {"secret": SECRET, "timestamp": ts, "body": body,
            "signature": slack_signature(SECRET, ts, body)}
    args.update(change)
    with pytest.raises(error):
        verify_slack_signature(args["secret"], args["timestamp"], args["body"],
                               args["signature"], NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_stale_or_future_timestamps_are_refused(offset: int) -> None:
    body, ts = click(), str(int(NOW) + offset)
    with pytest.raises(StaleRequest, match="away from now"):
        verify_slack_signature(SECRET, ts, body, slack_signature(SECRET, ts, body), NOW)


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_timestamps_inside_the_window_pass(offset: int) -> None:
    body, ts = click(), str(int(NOW) + offset)
    verify_slack_signature(SECRET, ts, body, slack_signature(SECRET, ts, body), NOW)


def test_an_old_request_replayed_with_a_fresh_timestamp_is_refused() -> None:
    body, old_ts = click(), str(int(NOW) - 3600)
    captured = slack_signature(SECRET, old_ts, body)
    with pytest.raises(StaleRequest):
        verify_slack_signature(SECRET, old_ts, body, captured, NOW)
    with pytest.raises(BadSignature):                    # the timestamp is signed too
        verify_slack_signature(SECRET, str(int(NOW)), body, captured, NOW)


def test_replay_within_the_window_is_caught_by_the_guard() -> None:
    guard, ts, body = ReplayGuard(), str(int(NOW)), click()
    signature = slack_signature(SECRET, ts, body)
    verify_slack_signature(SECRET, ts, body, signature, NOW)
    guard.check(signature, NOW)
    verify_slack_signature(SECRET, ts, body, signature, NOW + 30)      # still valid...
    with pytest.raises(BadSignature, match="replay"):
        guard.check(signature, NOW + 30)                                  # ...but seen
    guard.check(signature, NOW + 400)                                    # forgotten later
    assert issubclass(BadSignature, SignatureError)


def test_parse_a_button_click() -> None:
    got = parse_interaction(click("remediator_reject"))
    assert (got.user_id, got.user_name, got.team_id) == ("U0ALICE", "alice", "T0FAKE")
    assert (got.action_id, got.value, got.approved) == ("remediator_reject", "apr-42", False)
    assert (got.channel_id, got.message_ts) == ("C0001OPSALE", "1700000003.000003")
    assert parse_interaction(click()).approved


@pytest.mark.parametrize(("body", "match"), [
    (b"\xff\xfe", "form-encoded"),
    (b"payload=", "no single .payload."),
    (b"", "no single .payload."),
    (b"other=1", "no single 'payload'"),
    (urlencode({"payload": "{not json"}).encode(), "not JSON"),
    (urlencode({"payload": "[1]"}).encode(), "not a JSON object"),
    (click(type="view_submission"), "unsupported interaction type"),
    (click(actions=[]), "no actions"),
    (click(action_id="something_else"), "unknown action_id"),
    (click(value=""), "missing 'value'"),
    (click(user="U1"), "no 'user' object"),
])
def test_malformed_interactions(body: bytes, match: str) -> None:
    with pytest.raises(MalformedInteraction, match=match):
        parse_interaction(body)


def test_allow_list_by_user_and_group() -> None:
    check_allowed("U0ALICE", ["U0ALICE"])
    check_allowed("U0BOB", ["@oncall"], {"oncall": ["U0BOB"]})
    check_allowed("U0BOB", ["S0ONCALL"], {"S0ONCALL": {"U0BOB"}})
    with pytest.raises(NotAllowed, match="U0EVE"):
        check_allowed("U0EVE", ["U0ALICE", "@oncall"], {"oncall": ["U0BOB"]})
    with pytest.raises(NotAllowed):
        check_allowed("U0ALICE", [])


def test_a_group_id_as_the_clicker_does_not_match_the_group() -> None:
    with pytest.raises(NotAllowed):
        check_allowed("S0ONCALL", ["S0ONCALL"])
    with pytest.raises(NotAllowed):
        check_allowed("S0ONCALL", ["S0ONCALL"], {"S0ONCALL": {"U0BOB"}})
    with pytest.raises(NotAllowed):
        check_allowed("@oncall", ["@oncall"])
    check_allowed("U0BOB", ["S0ONCALL"], {"S0ONCALL": {"U0BOB"}})     # members still do


POSTED = ("C0001OPSALE", "1700000003.000003")


@pytest.mark.parametrize(("body", "team", "posted", "match"), [
    (click(team={"id": "T0OTHER"}), "T0FAKE", POSTED, "another Slack workspace"),
    (click(channel={"id": "C0009ELSE"}), None, POSTED, "forwarded, copied or old"),
    (click(container={"message_ts": "1700000099.000001"}, message={"ts": "x"}), None,
     POSTED, "forwarded, copied or old"),
    (click(), None, (None, None), "not posted by remediator"),
])
def test_a_click_must_come_from_the_posted_message(body: bytes, team: str | None,
                                                   posted: tuple[str | None, str | None],
                                                   match: str) -> None:
    refusal = message_refusal(parse_interaction(body), team, posted)
    assert refusal is not None
    assert match in refusal


def test_the_posted_message_in_the_configured_team_may_decide() -> None:
    assert message_refusal(parse_interaction(click()), "T0FAKE", POSTED) is None
    assert message_refusal(parse_interaction(click()), None, POSTED) is None
