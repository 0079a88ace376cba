"""Settings read under the service's prefix refuse development secrets outside dev; clocks can be moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from pitlane_platform.clock import FixedClock, OffsetClock, SystemClock, write_clock_offset
from pitlane_platform.settings import ServiceSettings


class WorkorderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKORDER_")


def test_settings_come_from_the_service_prefix(monkeypatch):
    monkeypatch.setenv("WORKORDER_DATABASE_URL", "postgresql://postgres:@/workorder?host=/tmp/x")
    monkeypatch.setenv("WORKORDER_NATS_URL", "nats://127.0.0.1:14222")
    monkeypatch.setenv("WORKORDER_CHAIN_TIMEZONE", "Asia/Urumqi")
    monkeypatch.setenv("REMINDER_NATS_URL", "nats://elsewhere:1")
    settings = WorkorderSettings()
    assert settings.nats_url == "nats://127.0.0.1:14222"
    assert str(settings.timezone) == "Asia/Urumqi"
    assert settings.migrate_at_start


@pytest.mark.parametrize("env", ["test", "prod"])
def test_default_secrets_are_refused_outside_dev(env):
    with pytest.raises(ValidationError, match="jwt_secret is the development default"):
        ServiceSettings(env=env, database_url="postgresql://x", nats_url="nats://x")
    with pytest.raises(ValidationError, match="link_secret is the development default"):
        ServiceSettings(env=env, database_url="postgresql://x", nats_url="nats://x", jwt_secret="s3cret")
    accepted = ServiceSettings(
        env=env, database_url="postgresql://x", nats_url="nats://x", jwt_secret="s3cret", link_secret="l1nk"
    )
    assert accepted.migrate_at_start is (env != "prod")


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValidationError, match="chain_timezone"):
        ServiceSettings(database_url="postgresql://x", nats_url="nats://x", chain_timezone="Mars/Olympus")


def test_clocks_fixed_offset_and_from_settings():
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    fixed = FixedClock(at)
    fixed.advance(timedelta(days=90))
    assert fixed.now() == at + timedelta(days=90)
    later = OffsetClock(timedelta(days=30)).now() - SystemClock().now()
    assert timedelta(days=29, hours=23) < later <= timedelta(days=30)
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))
    settings = ServiceSettings(database_url="postgresql://x", nats_url="nats://x", clock_fixed_at=at)
    assert settings.clock().now() == at


def test_a_steered_clock_follows_the_offset_file_at_every_reading(tmp_path):
    path = tmp_path / "clock-offset"
    settings = ServiceSettings(database_url="postgresql://x", nats_url="nats://x", clock_offset_file=path)
    clock = settings.clock()
    assert abs(clock.now() - SystemClock().now()) < timedelta(minutes=1)  # no file: real time
    write_clock_offset(path, -timedelta(days=730))
    assert abs(clock.now() - SystemClock().now() + timedelta(days=730)) < timedelta(minutes=1)
    write_clock_offset(path, -timedelta(days=1))
    assert abs(clock.now() - SystemClock().now() + timedelta(days=1)) < timedelta(minutes=1)
    path.unlink()
    assert abs(clock.now() - SystemClock().now()) < timedelta(minutes=1)
