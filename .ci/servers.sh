#!/usr/bin/env bash
# Install (if missing) and start the reference servers on loopback for the differential
# tests: Redis 7 on 127.0.0.1:6379 and RabbitMQ 3.10+ on 127.0.0.1:5672.
#   bash .ci/servers.sh start   # idempotent: does nothing for a server that already answers
#   bash .ci/servers.sh stop
# State lives under $INBUS_SERVERS_DIR (default: /tmp/inbus-servers).
set -u
dir=${INBUS_SERVERS_DIR:-/tmp/inbus-servers}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

install() {
  if ! command -v redis-server >/dev/null || ! command -v rabbitmq-server >/dev/null; then
    if [ "$(id -u)" != 0 ]; then echo "servers: not root, cannot apt-get install" >&2; return 1; fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server redis-server >/dev/null
  fi
}

start_redis() {
  port_open 6379 && { echo "servers: redis already answers on 127.0.0.1:6379"; return 0; }
  mkdir -p "$dir/redis"
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir "$dir/redis" --daemonize yes --logfile "$dir/redis/redis.log" >/dev/null
  for _ in $(seq 1 50); do port_open 6379 && { echo "servers: redis up"; return 0; }; sleep 0.2; done
  echo "servers: redis did not start" >&2; return 1
}

rabbit_env() {
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_NODENAME=rabbit@localhost HOME="$dir/rabbit"
  export RABBITMQ_MNESIA_BASE="$dir/rabbit/mnesia" RABBITMQ_LOG_BASE="$dir/rabbit/log"
  export RABBITMQ_FEATURE_FLAGS_FILE="$dir/rabbit/feature_flags"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbit/enabled_plugins"
}

start_rabbit() {
  port_open 5672 && { echo "servers: rabbitmq already answers on 127.0.0.1:5672"; return 0; }
  mkdir -p "$dir/rabbit/mnesia" "$dir/rabbit/log"
  [ -f "$dir/rabbit/enabled_plugins" ] || echo '[].' > "$dir/rabbit/enabled_plugins"
  if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$dir/rabbit"; fi
  rabbit_env
  (setsid rabbitmq-server >"$dir/rabbit/stdout.log" 2>&1 &)
  for _ in $(seq 1 120); do
    port_open 5672 && { sleep 1; echo "servers: rabbitmq up"; return 0; }
    sleep 0.5
  done
  echo "servers: rabbitmq did not start; see $dir/rabbit/stdout.log" >&2
  tail -20 "$dir/rabbit/stdout.log" >&2
  return 1
}

case "${1:-start}" in
  start) install && start_redis && start_rabbit ;;
  stop)
    redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1
    rabbit_env; rabbitmqctl stop >/dev/null 2>&1
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
