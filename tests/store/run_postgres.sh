#!/usr/bin/env bash
# `make test-postgres`: start a throw-away local PostgreSQL (Debian packages; installed if missing),
# run the storage tests against it with ASSAY_TEST_POSTGRES_URL set, then stop and delete it.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql from Debian packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$(mktemp -d /tmp/assay-pg.XXXXXX)
PORT=${ASSAY_PG_PORT:-55432}
RUN=(env)
if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
  chown postgres: "$PGDIR"
  RUN=(runuser -u postgres --)
fi
stop() {
  "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
trap stop EXIT
"${RUN[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U assay --auth=trust -E UTF8 >/dev/null
"${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
  -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
export ASSAY_TEST_POSTGRES_URL="postgresql://assay@127.0.0.1:$PORT/postgres"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT"
# the storage tests on both backends; the API's TestClient and schemathesis tests on PostgreSQL
.venv/bin/python -m pytest -p no:cacheprovider -q tests/store tests/api --deselect tests/api/test_server_e2e.py "$@"
