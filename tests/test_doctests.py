"""The examples in docstrings are part of the docs: run them."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import inbus

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(inbus.__path__, "inbus.")
    if m.name not in ("inbus.__main__",)
)


@pytest.mark.parametrize("name", ["inbus", *MODULES])
def test_docstring_examples(name: str) -> None:
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_names_are_pinned() -> None:
    assert sorted(inbus.__all__) == sorted([
        "AMQPError", "AccessRefused", "BasicProperties", "Bus", "BusStatistics", "Channel",
        "ChannelClosed", "CommandInvalid", "Connection", "ConnectionClosed", "DeclareResult",
        "ExchangeStatistics", "InbusError", "Message", "NackError", "NotAllowed", "NotFound",
        "NotImplementedByBus", "PersistenceError", "PreconditionFailed", "PubSub",
        "PubSubError", "QueueStatistics", "ReentrancyError", "ResourceLocked", "ReturnedMessage",
        "SubscriberClosed", "UnroutableError", "VHostStatistics", "__version__",
    ])
    for name in inbus.__all__:
        assert hasattr(inbus, name), name
    for name in inbus.__all__:
        obj = getattr(inbus, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, inbus.InbusError), f"{name} is outside the error tree"
