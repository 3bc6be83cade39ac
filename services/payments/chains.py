"""Following a chain for deposits to the orders' addresses (docs/chains.md, "Deposits").

The poller hands a chain account to `ChainFollower.follow` under the account's advisory lock. One round:
1. read the stored recent blocks (height -> hash) and our deposit addresses (short reads, committed);
2. ask the node (no transaction open): its tip; walking down from our cursor, the first height whose hash still
   matches ours is the fork point (a mismatch above it is a reorganisation); then the blocks after it, with the
   transfers to our addresses;
3. one transaction: forget the blocks above the fork (their deposits lose their block), record the new blocks and
   the transfers found, count confirmations from the tip, withdraw the deposits the new chain does not have
   (`removed` before their depth; `reversed` after it: an alert), credit those at their required depth through
   matching (a payment with external_id txid:index; the order is paid only now), move the account's cursor.
"""
import logging

from services.payments import metrics
from services.payments.adapters import Entry

log = logging.getLogger(__name__)


class ChainFollower:
    def __init__(self, matching, chain_store, max_blocks=500, memory=200):
        self.matching = matching
        self.chain_store = chain_store
        self.db = chain_store.db
        self.max_blocks = int(max_blocks)
        self.memory = int(memory)

    def _stored(self, system):
        rows = self.db.fetchall("SELECT height, hash FROM chain_blocks WHERE system = %s ORDER BY height DESC "
                                "LIMIT %s", (system, self.memory))
        return {r["height"]: r["hash"] for r in rows}

    def follow(self, conn, cur, account, adapter):
        """One round for `account` (its row); returns how many deposits it found or credited."""
        system = account["system"]
        stored = self._stored(system)
        with self.db.transaction() as read:
            addresses = self.chain_store.all_addresses(read, system)
        tip = adapter.tip_height()
        fork = None
        if stored:
            top = max(stored)
            height = min(top, tip)
            while height in stored and adapter.block_hash(height) != stored[height]:
                height -= 1
            if height not in stored and height >= min(stored):
                height = min(stored) - 1
            if height < top:
                fork = height
                log.warning("%s: reorganisation: our blocks above %d are no longer the node's best chain "
                            "(ours up to %d, node at %d): rescanning", system, height, top, tip)
                metrics.CHAIN_REORGS.labels(system).inc()
            start = height + 1
        else:
            # A new installation starts at the node's tip: no deposit address existed before it.
            start = max(0, tip - adapter.confirmations)
        blocks = []
        for height in range(start, min(tip, start + self.max_blocks - 1) + 1):
            block_hash = adapter.block_hash(height)
            if block_hash is None:
                break
            mined_at, transfers = adapter.block_transfers(height, block_hash, addresses)
            blocks.append((height, block_hash, mined_at, transfers))
        try:
            return self._apply(conn, cur, account, adapter, addresses, fork, blocks)
        except BaseException:
            conn.rollback()
            raise

    def _apply(self, conn, cur, account, adapter, addresses, fork, blocks):
        system = account["system"]
        store = self.chain_store
        if fork is not None:
            for lost in store.roll_back(cur, system, fork):
                log.warning("%s: deposit %s:%d of order %s left the chain with its block", system, lost["txid"],
                            lost["output_index"], lost["order_id"])
        found = 0
        for height, block_hash, mined_at, transfers in blocks:
            for t in transfers:
                store.upsert_deposit(cur, system, t.txid, t.index, addresses[t.address], t.amount,
                                     account["currency"], height, block_hash, mined_at, adapter.confirmations)
                found += 1
            store.record_block(cur, system, height, block_hash)
        tip = store.tip(cur, system)
        if tip is not None:
            store.set_confirmations(cur, system, tip["height"])
        for gone in store.orphaned_deposits(cur, system):
            if gone["status"] == "credited":
                store.set_deposit_status(cur, gone["id"], "reversed")
                metrics.CHAIN_DEPOSITS.labels(system, "reversed").inc()
                log.error("%s: ALERT: deposit %s:%d of order %s was credited at %d confirmations and is no longer "
                          "in the chain: the money it brought is gone", system, gone["txid"], gone["output_index"],
                          gone["order_id"], gone["required"])
            else:
                store.set_deposit_status(cur, gone["id"], "removed")
                metrics.CHAIN_DEPOSITS.labels(system, "removed").inc()
                log.warning("%s: deposit %s:%d withdrawn from order %s before its depth (not in the new chain)",
                            system, gone["txid"], gone["output_index"], gone["order_id"])
        credited = 0
        for deposit in store.deposits_at_depth(cur, system):
            entry = Entry(external_id="%s:%d" % (deposit["txid"], deposit["output_index"]), direction="in",
                          amount=deposit["amount"], currency=deposit["currency"], reference=deposit["reference"],
                          counterparty=None, occurred_at=deposit["mined_at"], cursor=str(deposit["block_height"]))
            created = self.matching.ingest(cur, account, [entry])
            payment_id = created[0]["id"] if created else None
            store.mark_credited(cur, deposit["id"], payment_id)
            metrics.CHAIN_DEPOSITS.labels(system, "credited").inc()
            credited += 1
        cursor = "%d:%s" % (tip["height"], tip["hash"]) if tip else None
        self.matching.store.record_poll(cur, account["id"], cursor, [], credited)
        conn.commit()
        return found + credited
