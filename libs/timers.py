"""The one timer every service uses: nameko's @timer with its interval read from the container config.

`@config_timer("EXPIRY_SWEEP_SECONDS", 5.0)` ticks every 5 s unless the service's config.yml (which reads the
environment) or a test's config says otherwise, so intervals are configured the same way everywhere.
"""
from nameko.timer import Timer


class ConfigTimer(Timer):
    def __init__(self, config_key, default, eager=False, **kwargs):
        super().__init__(interval=default, eager=eager, **kwargs)
        self.config_key = config_key

    def setup(self):
        value = self.container.config.get(self.config_key)
        self.interval = float(value) if value not in (None, "") else self.interval


config_timer = ConfigTimer.decorator
