"""inbus: RabbitMQ's model and Redis-style publish/subscribe inside your Python process.

>>> from inbus import Bus
>>> bus = Bus()
>>> ch = bus.channel()
>>> ch.queue_declare("hello").queue
'hello'
>>> ch.basic_publish("", "hello", b"Hello World!")
>>> ch.basic_get("hello", auto_ack=True).body
b'Hello World!'
>>> bus.close()
"""

from ._bus import Bus
from ._channel import Channel, DeclareResult
from ._connection import Connection
from ._errors import (
    AccessRefused,
    AMQPError,
    ChannelClosed,
    CommandInvalid,
    ConnectionClosed,
    InbusError,
    NackError,
    NotAllowed,
    NotFound,
    NotImplementedByBus,
    PersistenceError,
    PreconditionFailed,
    PubSubError,
    ReentrancyError,
    ResourceLocked,
    SubscriberClosed,
    UnroutableError,
)
from ._message import BasicProperties, Message, ReturnedMessage
from ._stats import BusStatistics, ExchangeStatistics, QueueStatistics, VHostStatistics
from .pubsub import PubSub

__version__ = "0.1.0"

__all__ = [
    "AMQPError",
    "AccessRefused",
    "BasicProperties",
    "Bus",
    "BusStatistics",
    "Channel",
    "ChannelClosed",
    "CommandInvalid",
    "Connection",
    "ConnectionClosed",
    "DeclareResult",
    "ExchangeStatistics",
    "InbusError",
    "Message",
    "NackError",
    "NotAllowed",
    "NotFound",
    "NotImplementedByBus",
    "PersistenceError",
    "PreconditionFailed",
    "PubSub",
    "PubSubError",
    "QueueStatistics",
    "ReentrancyError",
    "ResourceLocked",
    "ReturnedMessage",
    "SubscriberClosed",
    "UnroutableError",
    "VHostStatistics",
    "__version__",
]
