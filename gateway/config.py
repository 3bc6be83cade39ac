"""Gateway settings from the environment (blueprint §9)."""
from libs import config


def from_env():
    return {
        "AMQP_URI": config.amqp_uri(),
        "DATABASE_URL": config.database_url(),
        "RPC_TIMEOUT": config.env_float("GATEWAY_RPC_TIMEOUT", 5.0),
        "READY_SERVICES": [s for s in config.env("GATEWAY_READY_SERVICES", "orders").split(",") if s],
        "TOKEN_TTL_HOURS": config.env_float("GATEWAY_TOKEN_TTL_HOURS", 8.0),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        "PUBLIC_URL": config.env("PUBLIC_URL", "http://127.0.0.1:%s" % config.env("GATEWAY_PORT", "8000")),
    }
