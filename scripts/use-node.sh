# Source this file (`. scripts/use-node.sh`) to run sous on Node 24 on a machine whose own Node is
# older: it installs the npm registry's `node` package (which ships the official binary) into
# .cache/node once and puts it first on PATH for this shell. A machine with Node >= 24 is left as it is.
# shellcheck shell=bash
sous_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(sous_node_major)" -lt 24 ]; then
  sous_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
  sous_node_dir="$sous_root/.cache/node"
  if [ ! -x "$sous_node_dir/node_modules/node/bin/node" ]; then
    echo "[sous] installing Node 24 from the npm registry into $sous_node_dir" >&2
    npm install --silent --no-save --no-audit --no-fund --no-package-lock --prefix "$sous_node_dir" node@24 >&2
  fi
  export PATH="$sous_node_dir/node_modules/node/bin:$PATH"
  hash -r
  unset sous_root sous_node_dir
fi
echo "[sous] node $(node --version), npm $(npm --version)" >&2
unset -f sous_node_major
