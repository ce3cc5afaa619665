"""The exceptions the client raises; each carries the server's own words."""


class TickerdError(Exception):
    """Something the server refused or a connection that failed."""


class ConnectError(TickerdError):
    """The first connection could not be made (server down, 401, 403, 503):
    the message says which URL and the server's answer."""


class PublishError(TickerdError):
    """A publish the server refused; `reason` is the server's text (e.g.
    `forbidden: this token may not publish there`)."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"publish to {topic!r} refused: {reason}")
        #: The topic the publish was for.
        self.topic = topic
        #: The server's reason, as it sent it.
        self.reason = reason
