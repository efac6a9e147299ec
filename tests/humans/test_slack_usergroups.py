"""``SlackChat.usergroup_members`` (``usergroups.users.list``) against the fake Slack,
through the real slack_sdk client: members, an unknown group, Slack failing."""

from __future__ import annotations

import pytest

from remediator.adapters.slack import SlackChat
from remediator.errors import PermanentError, TemporaryError
from remediator.testing.fake_slack import FakeSlack


async def test_members_of_a_user_group(fake_slack: FakeSlack, chat: SlackChat) -> None:
    fake_slack.groups["S0ONCALL"] = ["U0ALICE", "U0BOB"]
    assert await chat.usergroup_members("S0ONCALL") == ["U0ALICE", "U0BOB"]
    assert fake_slack.call_count("usergroups.users.list") == 1
    [(_, args)] = [c for c in fake_slack.calls if c[0] == "usergroups.users.list"]
    assert args["usergroup"] == "S0ONCALL"


async def test_groups_given_to_the_constructor() -> None:
    fake = FakeSlack(groups={"S0EMPTY": []})
    await fake.start()
    chat = SlackChat(fake.token, base_url=fake.base_url, timeout=5)
    try:
        assert await chat.usergroup_members("S0EMPTY") == []
    finally:
        await chat.close()
        await fake.stop()


async def test_an_unknown_group_is_permanent(fake_slack: FakeSlack, chat: SlackChat) -> None:
    with pytest.raises(PermanentError, match="no_such_subteam"):
        await chat.usergroup_members("S0NOPE")


async def test_a_server_error_is_temporary_and_only_hits_that_method(
        fake_slack: FakeSlack, chat: SlackChat) -> None:
    fake_slack.groups["S0ONCALL"] = ["U0ALICE"]
    fake_slack.fail(times=1, status=503, method="usergroups.users.list")
    await chat.post("#oncall", "not affected by the fault")
    with pytest.raises(TemporaryError):
        await chat.usergroup_members("S0ONCALL")
    assert await chat.usergroup_members("S0ONCALL") == ["U0ALICE"]
