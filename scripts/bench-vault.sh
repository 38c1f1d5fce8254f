# shellcheck shell=bash
# Sourced by scripts/bench-agent.sh and scripts/agent-timeline.sh: the vault and the agent
# they measure.

# bench_vault CLI DIR: a vault in DIR/vault (`certvault init`'s default Argon2id cost) with a
# CA and one EC P-256 key, bench-ec; its PIN in DIR/pin, its CA's certificate in DIR/ca.pem.
# Sets $vault and defines cv (the CLI on that vault, with that PIN).
bench_vault() {
  bench_cli=$1
  bench_dir=$2
  vault=$bench_dir/vault
  printf 'bench-pin-1234\n' >"$bench_dir/pin"
  chmod 600 "$bench_dir/pin"
  cv() { "$bench_cli" --vault "$vault" --pin-file "$bench_dir/pin" "$@"; }
  cv init --label bench >/dev/null
  cv ca create --end-date +3650d >/dev/null
  cv create bench-ec --end-date +365d --key-type ec-p256 >/dev/null
  cv ca show --json | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["pem"])' \
    >"$bench_dir/ca.pem"
}

# bench_agent CPUS: after bench_vault, an agent serving its vault on DIR/agent.sock with an
# audit log (DIR/audit.log), unlocked, on the cores CPUS (`taskset -c` syntax; empty: all).
# Its pid is in $agent_pid, its socket in CERTVAULT_AGENT_SOCK.
bench_agent() {
  local on=()
  if [ -n "$1" ]; then on=(taskset -c "$1"); fi
  "${on[@]}" "$bench_cli" agent --vault "$vault" --socket "$bench_dir/agent.sock" \
    --audit-log "$bench_dir/audit.log" 2>"$bench_dir/agent.err" &
  # shellcheck disable=SC2034  # the sourcing script's
  agent_pid=$!
  export CERTVAULT_AGENT_SOCK=$bench_dir/agent.sock
  for _ in $(seq 100); do [ -S "$bench_dir/agent.sock" ] && break; sleep 0.1; done
  cv unlock
}
