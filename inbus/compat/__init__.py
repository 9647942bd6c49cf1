"""Drop-in look-alikes of client libraries on top of inbus: ``inbus.compat.pika`` and
``inbus.compat.redis``. Swap the import; the application code stays as written."""
