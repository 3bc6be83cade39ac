import eventlet

eventlet.monkey_patch()  # noqa: E402  nameko's worker_factory and its dependencies expect a green world
