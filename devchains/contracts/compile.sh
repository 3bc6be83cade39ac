#!/usr/bin/env bash
# Compile the demo token with solc from npm (deploy/local/node, installed by deploy/local/ensure-services.sh) and
# keep the output in the repository, so the chains process deploys the same bytecode everywhere without a compiler.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
solcjs="$here/../../deploy/local/node/node_modules/.bin/solcjs"
out="$(mktemp -d)"
"$solcjs" --bin --abi --optimize --optimize-runs 200 -o "$out" "$here/TestUSDT.sol" >/dev/null
cp "$out"/*TestUSDT.bin "$here/TestUSDT.bin"
cp "$out"/*TestUSDT.abi "$here/TestUSDT.abi"
"$solcjs" --version > "$here/TestUSDT.compiler"
rm -rf "$out"
echo "compiled: $here/TestUSDT.bin ($(wc -c < "$here/TestUSDT.bin") hex chars)"
