"""The sandbox adapter's lookup by key against the real sandbox: the transfer's state decides what it found."""
import pytest

from services.payments.adapters import FAILED, SENT, UNKNOWN, build

pytestmark = pytest.mark.timeout(60)


def test_sandbox_lookup_maps_the_transfer_state(env, pay_sandbox_server):
    """The sandbox writes its transfers `completed` (sandbox/domain.py); a transfer in any other state is not
    `sent`: a failed one is failed, a pending or unknown one is in doubt."""
    adapter = build("sandbox", {"adapter": "sandbox", "url": env.sandbox.url, "timeout": 5})
    key = "lookup-%s" % env.tag
    r = env.sandbox.transfer(env.accounts["EUR"], env.recipient, "5", currency="EUR", key=key)
    assert r.status_code == 201, r.text
    found = adapter.find_payout(key)
    assert (found.status, found.provider_id) == (SENT, r.json()["id"])
    for state, expected in (("pending", UNKNOWN), ("failed", FAILED), ("rejected", FAILED),
                            ("processing", UNKNOWN), ("completed", SENT)):
        env.db.fetchone("UPDATE %s.transfers SET status = %%s WHERE idempotency_key = %%s RETURNING id"
                        % pay_sandbox_server.schema, (state, key))
        assert adapter.find_payout(key).status == expected, state
    assert adapter.find_payout("nothing-%s" % env.tag) is None
    adapter.close()
