#!/usr/bin/env bash
# Starts a local Redis on 127.0.0.1:6379 if none answers there (the shared rate limits' tests use it), keeping
# nothing on disk, then waits for it. Installs Debian's redis-server first if it is missing.
set -euo pipefail
answers() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "installing redis-server" >&2
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if ! answers; then
  echo "starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
for _ in $(seq 1 60); do
  answers && exit 0
  sleep 0.5
done
echo "Redis did not come up on 127.0.0.1:6379" >&2
exit 1
