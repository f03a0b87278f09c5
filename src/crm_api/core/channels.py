"""Contact channels, shared by customer preferences, consents and the interaction timeline."""

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"
    CHAT = "chat"
    SOCIAL = "social"
    WEB = "web"
    APP = "app"
    IN_PERSON = "in_person"
