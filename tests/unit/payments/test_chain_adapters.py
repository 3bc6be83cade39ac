"""The chain rails' pure parts (docs/chains.md): which systems run, reading blocks and logs, the deposit wire form."""
import datetime
from decimal import Decimal as D

from services.payments import domain
from services.payments.adapters import evm, litecoin
from services.payments.dependencies import build_adapters, configured_accounts

CFG = {"PAYMENT_SYSTEMS": {"sandbox": {"adapter": "sandbox"},
                           "litecoin": {"adapter": "litecoin", "enabled": "false"},
                           "evm": {"adapter": "evm", "enabled": True}},
       "PAYMENT_ACCOUNTS": [{"system": "sandbox", "account": "EXCH-EUR", "currency": "EUR"},
                            {"system": "litecoin", "account": "LTC-HOT", "currency": "LTC"},
                            {"system": "evm", "account": "USDT-HOT", "currency": "USDTERC20"}]}


def test_a_switched_off_chain_is_neither_built_nor_polled():
    assert [a["account"] for a in configured_accounts(CFG, environ={})] == ["EXCH-EUR", "USDT-HOT"]
    assert set(build_adapters(CFG)) == {"sandbox", "evm"}


def test_litecoin_block_outputs_to_our_addresses_are_the_transfers(monkeypatch):
    adapter = litecoin.Adapter("litecoin", {"rpc_url": "http://127.0.0.1:1"}, environ={})
    block = {"time": 1700000000, "tx": [
        {"txid": "aa", "vout": [{"n": 0, "value": D("1.5"), "scriptPubKey": {"addresses": ["rltc1ours"]}},
                                {"n": 1, "value": D("2"), "scriptPubKey": {"address": "rltc1other"}}]},
        {"txid": "bb", "vout": [{"n": 3, "value": D("0.00000001"), "scriptPubKey": {"address": "rltc1ours"}}]}]}
    monkeypatch.setattr(adapter, "_call", lambda client, method, *params: block)
    mined_at, found = adapter.block_transfers(7, "hash", {"rltc1ours": {}})
    assert mined_at == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)
    assert [(t.txid, t.index, t.amount) for t in found] == [("aa", 0, D("1.5")), ("bb", 3, D("0.00000001"))]


def test_evm_transfer_logs_to_our_addresses_are_read_in_token_units(monkeypatch):
    adapter = evm.Adapter("evm", {"rpc_url": "http://127.0.0.1:1", "token": "0xToken"}, environ={})
    ours = "0x" + "ab" * 20
    logs = [{"transactionHash": "0x01", "logIndex": "0x2", "data": hex(12_500_000),
             "topics": [evm.TRANSFER_TOPIC, "0x" + "00" * 32, "0x" + "00" * 12 + "ab" * 20]},
            {"transactionHash": "0x02", "logIndex": "0x0", "data": hex(1), "removed": True,
             "topics": [evm.TRANSFER_TOPIC, "0x" + "00" * 32, "0x" + "00" * 12 + "ab" * 20]},
            {"transactionHash": "0x03", "logIndex": "0x1", "data": hex(5),
             "topics": [evm.TRANSFER_TOPIC, "0x" + "00" * 32, "0x" + "00" * 12 + "cd" * 20]}]
    answers = {"eth_getBlockByHash": {"timestamp": hex(1700000000)}, "eth_getLogs": logs}
    monkeypatch.setattr(adapter, "_call", lambda method, *params: answers[method])
    _, found = adapter.block_transfers(9, "0xhash", {ours: {}})
    assert [(t.txid, t.index, t.address, t.amount) for t in found] == [("0x01", 2, ours, D("12.5"))]


def test_the_deposit_wire_form_shows_depth_only_for_deposits_in_a_block():
    address = {"system": "litecoin", "address": "rltc1x"}
    deposits = [{"txid": "aa", "output_index": 0, "amount": D("1.5"), "currency": "LTC", "confirmations": 2,
                 "required": 3, "status": "confirming", "block_height": 120},
                {"txid": "bb", "output_index": 1, "amount": D("2"), "currency": "LTC", "confirmations": 0,
                 "required": 3, "status": "removed", "block_height": None}]
    wire = domain.deposit_to_wire(address, deposits, 3, D("0.0000141"))
    assert wire["address"] == "rltc1x" and wire["required_confirmations"] == 3
    assert wire["network_fee_estimate"] == "0.0000141"
    assert [(d["amount"], d["confirmations"], d["status"]) for d in wire["deposits"]] == [
        ("1.5", 2, "confirming"), ("2", 0, "removed")]
