"""The Procfile's `chains` process: start the local chains, fund the wallets, mine blocks at an interval.

Environment (make run sets these; the end-to-end tests set their own ports and folder):
  CHAINS_DIR               where the nodes keep their data (var/chains)
  CHAINS_RESET             1: start from an empty chain (the tests)
  CHAINS_MINE_SECONDS      a block every so many seconds (5; 0: never, the tests mine themselves)
  LITECOIN_ENABLED         run the Litecoin node (true/false)
  LITECOIN_RPC_PORT, LITECOIN_P2P_PORT, LITECOIN_RPC_USER, LITECOIN_RPC_PASSWORD
  EVM_ENABLED              run anvil with the demo token; EVM_RPC_PORT, EVM_KEYS_FILE (the keys, generated at the
                           first start), EVM_TOKEN_FILE (where the token's address is written)
"""
import logging
import os
import signal
import sys
import time

from devchains.evm import AnvilNode
from devchains.litecoin import LitecoinNode

log = logging.getLogger("devchains")


def _on(name, default="false"):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def litecoin_node(chains_dir=None):
    chains_dir = chains_dir or os.environ.get("CHAINS_DIR", "var/chains")
    return LitecoinNode(os.path.join(chains_dir, "litecoin"), os.environ.get("LITECOIN_RPC_PORT", "19443"),
                        os.environ.get("LITECOIN_P2P_PORT", "19444"), os.environ.get("LITECOIN_RPC_USER", "exchanger"),
                        os.environ["LITECOIN_RPC_PASSWORD"])


def anvil_node(chains_dir=None):
    chains_dir = chains_dir or os.environ.get("CHAINS_DIR", "var/chains")
    return AnvilNode(os.path.join(chains_dir, "evm"), os.environ.get("EVM_RPC_PORT", "8545"),
                     keys_file=os.environ.get("EVM_KEYS_FILE"))


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s chains: %(message)s")
    nodes = []
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    try:
        if _on("LITECOIN_ENABLED"):
            ltc = litecoin_node()
            ltc.start(reset=_on("CHAINS_RESET"))
            nodes.append(ltc)
            ltc.setup()
            log.info("litecoind regtest on 127.0.0.1:%d, data in %s (the hot wallet's keys are in its wallet "
                     "'hot' there); height %d, hot wallet %s LTC", ltc.rpc_port, ltc.datadir, ltc.height(),
                     ltc.rpc("hot").call("getbalances")["mine"]["trusted"])
        if _on("EVM_ENABLED"):
            evm = anvil_node()
            evm.start(reset=_on("CHAINS_RESET"))
            nodes.append(evm)
            token = evm.setup()
            token_file = os.environ.get("EVM_TOKEN_FILE")
            if token_file and token_file != os.path.join(evm.datadir, "token-address"):
                with open(token_file, "w") as fh:
                    fh.write(token)
            log.info("anvil on 127.0.0.1:%d, state in %s; demo USDT at %s; hot wallet %s and demo %s, their keys "
                     "and the deposit addresses' seed in %s", evm.port, evm.datadir, token, evm.address("hot"),
                     evm.address("demo"), evm.keys_file)
        if not nodes:
            log.info("no chain enabled (LITECOIN_ENABLED, EVM_ENABLED): nothing to run")
        print("chains ready", flush=True)
        interval = float(os.environ.get("CHAINS_MINE_SECONDS", "5"))
        next_block = time.monotonic() + interval
        while not stopping:
            time.sleep(0.2)
            if interval > 0 and time.monotonic() >= next_block:
                next_block += interval
                for node in nodes:
                    try:
                        node.mine(1)
                    except Exception as exc:  # noqa: BLE001 - a node restarting: mine at the next tick
                        log.warning("mining: %s", exc)
    finally:
        for node in nodes:
            node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
