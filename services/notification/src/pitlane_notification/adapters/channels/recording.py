"""The development provider of every channel: it keeps each message it is given in `recorded_messages`
(on its own connection, as a real provider keeps what it accepted whatever our transaction does), for
`GET /v1/recorded-messages` and `pitlane messages`. Nothing leaves the machine."""

from __future__ import annotations

from pitlane_notification.adapters import message_log
from pitlane_notification.adapters.channels.base import OutboundMessage, SendReceipt
from pitlane_platform.db import DriverPool


class RecordingProvider:
    name = "recording"

    def __init__(self, channel: str, driver: DriverPool) -> None:
        self.channel = channel
        self._driver = driver

    async def send(self, message: OutboundMessage) -> SendReceipt:
        async with self._driver.transaction() as unit:
            await message_log.record(
                unit,
                {
                    "message_id": message.message_id,
                    "channel": message.channel,
                    "address": message.address,
                    "subject": message.subject,
                    "body": message.body,
                    "provider_template": message.provider_template,
                    "parameters": message.parameters,
                    "link": message.link,
                },
            )
        return SendReceipt(provider=self.name, provider_message_id=f"rec-{message.message_id}")

    async def close(self) -> None:
        return None
