#!/usr/bin/env bash
# make cluster: PostgreSQL, NATS, three Parley nodes and HAProxy in front
# of them, all on 127.0.0.1, with the demo shop pointed at the balancer.
# Everything lives in a temporary folder; Ctrl-C stops all of it.
#
# Needs Debian's postgresql, nats-server and haproxy packages (.ci/run
# installs them): apt-get install -y postgresql nats-server haproxy
set -euo pipefail
cd "$(dirname "$0")/.."

BALANCER=${PARLEY_CLUSTER_PORT:-8080}
SHOP=${PARLEY_CLUSTER_SHOP:-localhost:8081}
PG_PORT=54329
NATS_PORT=42229
NODES=(127.0.0.1:8091 127.0.0.1:8092 127.0.0.1:8093)

need() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || { echo "make cluster needs $1: apt-get install -y $2" >&2; exit 1; }; }
need nats-server nats-server
need haproxy haproxy
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] || { echo "make cluster needs PostgreSQL: apt-get install -y postgresql" >&2; exit 1; }
PATH=$PATH:/usr/sbin

dir=$(mktemp -d /tmp/parley-cluster.XXXXXX)
chmod 755 "$dir"
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping the cluster…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${keep:-}" ]; then echo "logs kept in $dir"; else rm -rf "$dir"; fi
  exit "${1:-0}"
}
trap 'stop 0' INT TERM
trap 'keep=1; stop 1' EXIT # set -e, or a process that exited by itself

# Each process runs in a session of its own: Ctrl-C reaches this script
# alone, which then stops them all.
start() { local log=$1; shift; setsid "$@" >"$log" 2>&1 & pids+=($!); }
# PostgreSQL refuses to run as root: as root it runs as the packages' postgres user.
as_db_cmd=()
[ "$(id -u)" = 0 ] && as_db_cmd=(runuser -u postgres --)
as_db() { "${as_db_cmd[@]}" "$@"; }
mkdir -p "$dir/pg"
[ "$(id -u)" = 0 ] && chown postgres "$dir/pg"
as_db "$PGBIN/initdb" -D "$dir/pg" -U parley --auth=trust >"$dir/initdb.log"
start "$dir/postgres.log" "${as_db_cmd[@]}" "$PGBIN/postgres" -D "$dir/pg" -h 127.0.0.1 -p $PG_PORT -k "$dir/pg"
for _ in $(seq 100); do as_db "$PGBIN/pg_isready" -q -h 127.0.0.1 -p $PG_PORT -U parley && break; sleep 0.1; done
as_db "$PGBIN/createdb" -h 127.0.0.1 -p $PG_PORT -U parley parley
DB="postgres://parley@127.0.0.1:$PG_PORT/parley?sslmode=disable"

start "$dir/nats.log" nats-server -a 127.0.0.1 -p $NATS_PORT
NATS="nats://127.0.0.1:$NATS_PORT"

export PARLEY_MASTER_KEY
PARLEY_MASTER_KEY=$(bin/parley keygen) # the same key on every node

# The balancer: websocket upgrades pass through HTTP mode; a tunnel may
# idle far longer than the 54 s between pings; /readyz takes a node out.
cat >"$dir/haproxy.cfg" <<EOF
defaults
  mode http
  option forwardfor
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  timeout tunnel 1h
frontend parley
  bind 127.0.0.1:$BALANCER
  default_backend nodes
backend nodes
  balance leastconn
  option httpchk GET /readyz
  http-check expect status 200
  default-server check inter 1s fall 2 rise 2
$(for i in "${!NODES[@]}"; do echo "  server node$((i + 1)) ${NODES[$i]}"; done)
EOF

public="http://127.0.0.1:$BALANCER"
# The first node is `parley demo`: it makes the demo app and owner, and
# runs the demo shop pointed at the balancer.
setsid bin/parley demo --database-url "$DB" --nats-url "$NATS" --addr "${NODES[0]}" --public-url "$public" --shop-addr "$SHOP" 2>"$dir/node1.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://${NODES[0]}/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
for i in 1 2; do
  start "$dir/node$((i + 1)).log" bin/parley serve --database-url "$DB" --nats-url "$NATS" --addr "${NODES[$i]}" \
    --public-url "$public" --trusted-proxy 127.0.0.1
done
start "$dir/haproxy.log" haproxy -f "$dir/haproxy.cfg" -db

cat <<EOF

Parley cluster (logs in $dir)
  Balancer (HAProxy):  $public   ← the Parley URL; /readyz takes a node out
  Nodes:               ${NODES[*]}
  PostgreSQL:          $DB
  NATS:                $NATS
Try: kill one node (its clients reconnect through the balancer to another),
or restart NATS; the demo shop and the dashboard's password are printed above.

Ctrl-C stops everything.
EOF
wait -n "${pids[@]}" || true
echo "a process of the cluster exited by itself" >&2
