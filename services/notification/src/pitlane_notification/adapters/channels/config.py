"""How a chain configures each channel provider: one frozen pydantic model per provider kind, told apart by
`kind`, and `build_provider` that makes the provider a configuration describes.

Secrets are `SecretStr`, so a configuration printed, logged or dumped to JSON shows `**********` in their
place. Every provider takes `timeout_s`: the longest one call to the provider may take, connection included.
"""

from __future__ import annotations

from typing import Annotated, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pitlane_notification.adapters.channels.aliyun import AliyunSmsProvider
from pitlane_notification.adapters.channels.base import ChannelProvider
from pitlane_notification.adapters.channels.email import SmtpEmailProvider
from pitlane_notification.adapters.channels.tencent import TencentSmsProvider
from pitlane_notification.adapters.channels.webhook import WebhookProvider
from pitlane_notification.adapters.channels.wechat import WeChatProvider
from pitlane_platform.mail import SmtpSettings

NonEmpty = Annotated[str, Field(min_length=1)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^/\s]+")]


class _ProviderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=10.0, gt=0)


class AliyunSmsConfig(_ProviderConfig):
    """Alibaba Cloud SMS (阿里云短信服务), through its official SDK."""

    kind: Literal["aliyun"] = "aliyun"
    access_key_id: NonEmpty
    access_key_secret: SecretStr
    sign_name: NonEmpty  # the approved 签名, e.g. 车友汽修
    endpoint: NonEmpty = "dysmsapi.aliyuncs.com"  # host[:port]
    protocol: Literal["https", "http"] = "https"


class TencentSmsConfig(_ProviderConfig):
    """Tencent Cloud SMS (腾讯云短信), through its official SDK."""

    kind: Literal["tencent"] = "tencent"
    secret_id: NonEmpty
    secret_key: SecretStr
    sdk_app_id: NonEmpty  # SmsSdkAppId, e.g. 1400000000
    sign_name: NonEmpty
    region: NonEmpty = "ap-guangzhou"
    endpoint: NonEmpty = "sms.tencentcloudapi.com"  # host[:port]
    protocol: Literal["https", "http"] = "https"


class WeChatConfig(_ProviderConfig):
    """WeChat subscription messages. An Official Account (公众号) sends 订阅通知 through `subscribe/bizsend`
    and `link` is the web page the message opens; a Mini Program (小程序) sends 订阅消息 through
    `subscribe/send` and `link` is a page path of the Mini Program."""

    kind: Literal["wechat"] = "wechat"
    app_id: NonEmpty
    app_secret: SecretStr
    account: Literal["official_account", "mini_program"] = "official_account"
    base_url: HttpUrl = "https://api.weixin.qq.com"


class SmtpConfig(SmtpSettings):
    """E-mail through an SMTP server: the platform's SMTP settings (pitlane_platform.mail), as one of a
    chain's providers."""

    kind: Literal["smtp"] = "smtp"


class WebhookConfig(_ProviderConfig):
    """A chain's own endpoint (its own SMS gateway, its CRM): messages are POSTed to it as signed JSON."""

    kind: Literal["webhook"] = "webhook"
    channel: Literal["sms", "wechat", "email"]  # the channel this endpoint serves
    url: HttpUrl
    secret: SecretStr  # the HMAC-SHA256 key the receiver checks X-Pitlane-Signature with


ProviderConfig = Annotated[
    AliyunSmsConfig | TencentSmsConfig | WeChatConfig | SmtpConfig | WebhookConfig,
    Field(discriminator="kind"),
]


def build_provider(config: ProviderConfig) -> ChannelProvider:
    """The provider `config` describes; the caller closes it (`await provider.close()`) when done."""
    match config:
        case AliyunSmsConfig():
            return AliyunSmsProvider(config)
        case TencentSmsConfig():
            return TencentSmsProvider(config)
        case WeChatConfig():
            return WeChatProvider(config)
        case SmtpConfig():
            return SmtpEmailProvider(config)
        case WebhookConfig():
            return WebhookProvider(config)
        case _:
            assert_never(config)
