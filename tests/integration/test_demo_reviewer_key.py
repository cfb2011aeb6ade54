"""The demo keeps one reviewer key across restarts, in DATA_DIR, readable by its owner only;
a key the database no longer knows (reset) is replaced, and the new one kept."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from cli.demo import KEY_FILE, demo_reviewer_key
from services.review.reviewers import ReviewerKeys


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_two_starts_print_the_same_key_kept_owner_only(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = ReviewerKeys(engine)

    first = await demo_reviewer_key(keys, tmp_path)
    second = await demo_reviewer_key(keys, tmp_path)

    assert second == first
    assert (tmp_path / KEY_FILE).read_text().strip() == first
    assert mode(tmp_path / KEY_FILE) == 0o600
    reviewer = await keys.verify(first)
    assert reviewer is not None and reviewer.name == "demo-reviewer"


async def test_a_key_the_database_no_longer_knows_is_replaced(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = ReviewerKeys(engine)
    old = await demo_reviewer_key(keys, tmp_path)
    await keys.revoke(old)  # as after a database reset: the stored key verifies no more

    new = await demo_reviewer_key(keys, tmp_path)

    assert new != old
    assert await keys.verify(new) is not None
    assert (tmp_path / KEY_FILE).read_text().strip() == new
    assert mode(tmp_path / KEY_FILE) == 0o600
    assert await demo_reviewer_key(keys, tmp_path) == new


async def test_a_stored_key_made_readable_by_others_is_owner_only_again(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = ReviewerKeys(engine)
    key = await demo_reviewer_key(keys, tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)

    assert await demo_reviewer_key(keys, tmp_path) == key
    assert mode(tmp_path / KEY_FILE) == 0o600


async def test_another_reviewers_key_in_the_file_is_not_taken_for_the_demos(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = ReviewerKeys(engine)
    alice = (await keys.create("alice")).key
    (tmp_path / KEY_FILE).write_text(alice)

    key = await demo_reviewer_key(keys, tmp_path)

    assert key != alice
    reviewer = await keys.verify(key)
    assert reviewer is not None and reviewer.name == "demo-reviewer"
