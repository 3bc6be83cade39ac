"""Local development chains for the exchanger's real money rails (docs/chains.md): a Litecoin regtest node
(litecoind from Debian's packages) run with its own data directory, funded hot and demo wallets, and blocks mined
at an interval. `python -m devchains` is the Procfile's `chains` process; the tests start nodes through the same
classes on their own ports and folders; `python -m devchains.send` pays an order from a demo wallet."""
