"""waitline: pause a workflow until the right event arrives, then resume the right run."""

from waitline.client import Client, Runner
from waitline.config import Settings
from waitline.errors import WaitlineError
from waitline.schemas.models import CancelWait, Event, ResumeCommand, WaitRegistration

__all__ = [
    "CancelWait",
    "Client",
    "Event",
    "ResumeCommand",
    "Runner",
    "Settings",
    "WaitRegistration",
    "WaitlineError",
]

__version__ = "0.1.0"
