"""The development mailer (no SMTP server in `pitlane up`): it keeps each digest e-mail it is given in
`recorded_digest_emails`, on its own connection, as a real server keeps what it accepted whatever our
transaction does. Nothing leaves the machine; production refuses to start with it (ANALYTICS_SMTP unset)."""

from __future__ import annotations

from pitlane_analytics.adapters import digest_store
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool
from pitlane_platform.mail import Mail


class RecordingMailer:
    def __init__(self, driver: DriverPool, clock: Clock) -> None:
        self._driver = driver
        self._clock = clock

    async def send(self, mail: Mail) -> str:
        async with self._driver.transaction() as unit:
            await digest_store.record_email(
                unit,
                {
                    "message_id": mail.message_id,
                    "email": mail.to,
                    "subject": mail.subject,
                    "text": mail.text,
                    "html": mail.html,
                    "recorded_at": self._clock.now(),
                },
            )
        return f"rec-{mail.message_id}"
