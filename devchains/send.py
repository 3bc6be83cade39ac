"""Pay an order from a demo customer's wallet (the chains' counterpart of the sandbox bank's page).

    python -m devchains.send LTC <address> <amount>
    python -m devchains.send USDTERC20 <address> <amount>

Uses the same environment as `python -m devchains` (make run prints it). Prints the transaction id; the order page
shows the transfer and its confirmations as blocks are mined.
"""
import argparse
import sys
from decimal import Decimal, InvalidOperation

from devchains.__main__ import anvil_node, litecoin_node


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("currency", choices=["LTC", "USDTERC20"])
    parser.add_argument("address")
    parser.add_argument("amount")
    args = parser.parse_args(argv)
    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        parser.error("amount: not a number")
    places = Decimal("0.00000001") if args.currency == "LTC" else Decimal("0.000001")
    if amount <= 0 or amount != amount.quantize(places):
        parser.error("amount: positive, at most %d decimals" % -places.as_tuple().exponent)
    if args.currency == "LTC":
        txid = litecoin_node().send("demo", args.address, amount)
    else:
        txid = anvil_node().send_token("demo", args.address, amount)
    print(txid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
