#!/usr/bin/env bash
# Private, local ClickHouse server for development and the sink/ tests.
#
#   deploy/local/clickhouse.sh {install|start|stop|status|restart}
#
# Runs clickhouse-server as a plain background process (not systemd) with its
# own config, users, data, logs and pid file under DPINSTRUCT_CH_DIR, bound to
# 127.0.0.1 only, so it never collides with a system-wide instance.
#
# Environment:
#   DPINSTRUCT_CH_DIR        state directory   (default: $PWD/.dpinstruct/clickhouse)
#   DPINSTRUCT_CH_PORT       native TCP port   (default: 19000)
#   DPINSTRUCT_CH_HTTP_PORT  HTTP port         (default: 18123)
#   DPINSTRUCT_CH_TIMEOUT    start timeout, s  (default: 60)
#
# Optional, for trying secured connections (unset: neither is configured):
#   DPINSTRUCT_CH_TLS_PORT   also serve the native protocol over TLS on this
#                            port, with DPINSTRUCT_CH_TLS_CERT and
#                            DPINSTRUCT_CH_TLS_KEY (PEM files)
#   DPINSTRUCT_CH_USER       also create this user, loopback only, whose
#                            password is read from DPINSTRUCT_CH_PASSWORD_FILE
#                            (stored as its SHA-256 only)
#
# Optional cluster mode, for replicated tables and ON CLUSTER DDL (unset: no
# cluster, ZooKeeper or interserver settings are written; see
# deploy/local/zookeeper.sh for a local ZooKeeper and the README's "ClickHouse
# clusters" section):
#   DPINSTRUCT_CH_CLUSTER           cluster name in <remote_servers>; enables
#                                   cluster mode
#   DPINSTRUCT_CH_CLUSTER_REPLICAS  comma-separated host:port (native) of the
#                                   replicas of its one shard, this server
#                                   included (default: 127.0.0.1:$DPINSTRUCT_CH_PORT)
#   DPINSTRUCT_CH_CLUSTER_SHARDS    several shards instead: their replica
#                                   lists (as above) separated by ';', e.g.
#                                   "h1:9000,h2:9000;h3:9000,h4:9000"; wins
#                                   over DPINSTRUCT_CH_CLUSTER_REPLICAS
#   DPINSTRUCT_CH_ZOOKEEPER         comma-separated ZooKeeper host:port
#                                   (default: 127.0.0.1:12181)
#   DPINSTRUCT_CH_INTERSERVER_PORT  replication (interserver HTTP) port on
#                                   127.0.0.1 (default: DPINSTRUCT_CH_PORT + 9)
#   DPINSTRUCT_CH_SHARD             {shard} macro   (default: 1)
#   DPINSTRUCT_CH_REPLICA           {replica} macro (default: replica_$DPINSTRUCT_CH_PORT)
#
# After `start`, point the sink tests at it:
#   export DPINSTRUCT_CLICKHOUSE_DSN=clickhouse://default@127.0.0.1:19000/default
set -euo pipefail

CH_DIR="${DPINSTRUCT_CH_DIR:-$PWD/.dpinstruct/clickhouse}"
CH_PORT="${DPINSTRUCT_CH_PORT:-19000}"
CH_HTTP_PORT="${DPINSTRUCT_CH_HTTP_PORT:-18123}"
CH_TIMEOUT="${DPINSTRUCT_CH_TIMEOUT:-60}"
CH_TLS_PORT="${DPINSTRUCT_CH_TLS_PORT:-}"
CH_TLS_CERT="${DPINSTRUCT_CH_TLS_CERT:-}"
CH_TLS_KEY="${DPINSTRUCT_CH_TLS_KEY:-}"
CH_USER="${DPINSTRUCT_CH_USER:-}"
CH_PASSWORD_FILE="${DPINSTRUCT_CH_PASSWORD_FILE:-}"
CH_CLUSTER="${DPINSTRUCT_CH_CLUSTER:-}"
CH_CLUSTER_REPLICAS="${DPINSTRUCT_CH_CLUSTER_REPLICAS:-127.0.0.1:$CH_PORT}"
CH_CLUSTER_SHARDS="${DPINSTRUCT_CH_CLUSTER_SHARDS:-$CH_CLUSTER_REPLICAS}"
CH_ZOOKEEPER="${DPINSTRUCT_CH_ZOOKEEPER:-127.0.0.1:12181}"
CH_INTERSERVER_PORT="${DPINSTRUCT_CH_INTERSERVER_PORT:-$((CH_PORT + 9))}"
CH_SHARD="${DPINSTRUCT_CH_SHARD:-1}"
CH_REPLICA="${DPINSTRUCT_CH_REPLICA:-replica_$CH_PORT}"

CONF_DIR="$CH_DIR/etc"
DATA_DIR="$CH_DIR/data"
LOG_DIR="$CH_DIR/log"
PID_FILE="$CH_DIR/clickhouse-server.pid"
DSN="clickhouse://default@127.0.0.1:${CH_PORT}/default"

DAEMON_NAME=clickhouse.sh
DAEMON_MATCH=clickhouse
DAEMON_PORT="$CH_PORT"
DAEMON_LOGS=("$LOG_DIR/clickhouse-server.err.log" "$LOG_DIR/stdout.log")
daemon_address() { echo "$DSN"; }
# shellcheck source=deploy/local/daemon.sh
. "$(dirname "$0")/daemon.sh"

# server_cmd prints the command that starts the server: old Debian packages
# ship a separate clickhouse-server binary, newer ones a multi-call
# `clickhouse` binary.
server_cmd() {
	if command -v clickhouse-server >/dev/null 2>&1; then
		command -v clickhouse-server
	elif [ -x /usr/sbin/clickhouse-server ]; then
		echo /usr/sbin/clickhouse-server
	elif command -v clickhouse >/dev/null 2>&1; then
		echo "$(command -v clickhouse) server"
	else
		return 1
	fi
}

client_cmd() {
	if command -v clickhouse-client >/dev/null 2>&1; then
		command -v clickhouse-client
	elif command -v clickhouse >/dev/null 2>&1; then
		echo "$(command -v clickhouse) client"
	else
		return 1
	fi
}

do_install() {
	if server_cmd >/dev/null && client_cmd >/dev/null; then
		log "clickhouse already installed ($(server_cmd))"
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || die "clickhouse not installed and apt-get is unavailable; install clickhouse-server and clickhouse-client manually"
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install clickhouse"
		sudo="sudo"
	fi
	log "installing clickhouse-server and clickhouse-client via apt-get"
	# policy-rc.d / missing systemd may refuse to start the packaged service;
	# that is fine, we never use it.
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client
	server_cmd >/dev/null || die "clickhouse-server binary not found after install"
}

# write_config (re)generates config and users files on every start so that a
# port change via the environment takes effect; data is left alone. Interserver
# (outside cluster mode) and MySQL ports are simply not configured, so they are
# not opened.
write_config() {
	mkdir -p "$CONF_DIR" "$DATA_DIR/tmp" "$DATA_DIR/user_files" "$DATA_DIR/format_schemas" "$LOG_DIR"
	local tls_xml="" user_xml="" cluster_xml="" balancing=random
	if [ -n "$CH_TLS_PORT" ]; then
		[ -r "$CH_TLS_CERT" ] && [ -r "$CH_TLS_KEY" ] || die "DPINSTRUCT_CH_TLS_PORT needs readable DPINSTRUCT_CH_TLS_CERT and DPINSTRUCT_CH_TLS_KEY"
		tls_xml="    <tcp_port_secure>$CH_TLS_PORT</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>$CH_TLS_CERT</certificateFile>
            <privateKeyFile>$CH_TLS_KEY</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
"
	fi
	if [ -n "$CH_CLUSTER" ]; then
		cluster_xml="$(cluster_config)"$'\n' || exit 1
		# Replicas in configuration order, so what one client writes through
		# a Distributed table the next one reads (see sink/cluster.go).
		balancing=in_order
	fi
	if [ -n "$CH_USER" ]; then
		[[ "$CH_USER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "DPINSTRUCT_CH_USER must be a plain identifier"
		[ -r "$CH_PASSWORD_FILE" ] || die "DPINSTRUCT_CH_USER needs a readable DPINSTRUCT_CH_PASSWORD_FILE"
		local sha
		# The password never reaches a command line or the config, only its
		# hash does. A trailing newline in the file is dropped.
		sha="$(tr -d '\r\n' <"$CH_PASSWORD_FILE" | sha256sum | cut -d' ' -f1)"
		user_xml="        <$CH_USER>
            <password_sha256_hex>$sha</password_sha256_hex>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </$CH_USER>
"
	fi
	cat >"$CONF_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by deploy/local/clickhouse.sh; edits are overwritten on start. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$LOG_DIR/clickhouse-server.log</log>
        <errorlog>$LOG_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$CH_PORT</tcp_port>
    <http_port>$CH_HTTP_PORT</http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>1073741824</mark_cache_size>
    <path>$DATA_DIR/</path>
    <tmp_path>$DATA_DIR/tmp/</tmp_path>
    <user_files_path>$DATA_DIR/user_files/</user_files_path>
    <format_schema_path>$DATA_DIR/format_schemas/</format_schema_path>
    <users_config>$CONF_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
${tls_xml}${cluster_xml}</yandex>
EOF
	{
		cat <<EOF
<?xml version="1.0"?>
<!-- Generated by deploy/local/clickhouse.sh; edits are overwritten on start. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>10000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>$balancing</load_balancing>
        </default>
    </profiles>
    <users>
        <!-- Passwordless, but only reachable from loopback. -->
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
EOF
		printf '%s' "$user_xml"
		cat <<'EOF'
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
	} >"$CONF_DIR/users.xml"
}

# xml_hostport_list prints each host:port of the comma-separated list $3 as
# a <$1> element with <host> and <port>, indented by $2.
xml_hostport_list() {
	local tag="$1" ind="$2" hp host port
	local IFS=,
	for hp in $3; do
		host="${hp%:*}"
		port="${hp##*:}"
		[[ "$host" =~ ^[A-Za-z0-9_.-]+$ && "$port" =~ ^[0-9]+$ && "$host" != "$hp" ]] || return 1
		printf '%s<%s>\n%s    <host>%s</host>\n%s    <port>%s</port>\n%s</%s>\n' \
			"$ind" "$tag" "$ind" "$host" "$ind" "$port" "$ind" "$tag"
	done
}

# cluster_config prints the config.xml fragment of cluster mode: ZooKeeper,
# one cluster whose shards and replicas are DPINSTRUCT_CH_CLUSTER_SHARDS,
# this server's macros, the interserver port replicas fetch parts from, and
# the distributed DDL queue.
cluster_config() {
	[[ "$CH_CLUSTER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "DPINSTRUCT_CH_CLUSTER must be a plain identifier"
	[[ "$CH_SHARD" =~ ^[A-Za-z0-9_]+$ ]] || die "DPINSTRUCT_CH_SHARD must be alphanumeric"
	[[ "$CH_REPLICA" =~ ^[A-Za-z0-9_.-]+$ ]] || die "DPINSTRUCT_CH_REPLICA must be alphanumeric"
	[[ "$CH_INTERSERVER_PORT" =~ ^[0-9]+$ ]] || die "DPINSTRUCT_CH_INTERSERVER_PORT must be a port number"
	local zk shards="" shard replicas
	zk="$(xml_hostport_list node "        " "$CH_ZOOKEEPER")" || die "DPINSTRUCT_CH_ZOOKEEPER must be host:port[,host:port...]"
	local IFS=';'
	for shard in $CH_CLUSTER_SHARDS; do
		replicas="$(xml_hostport_list replica "                " "$shard")" || die "DPINSTRUCT_CH_CLUSTER_SHARDS / _REPLICAS must be host:port[,host:port...][;host:port...]"
		shards+="            <shard>
                <internal_replication>true</internal_replication>
$replicas
            </shard>
"
	done
	unset IFS
	cat <<EOF
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$CH_INTERSERVER_PORT</interserver_http_port>
    <zookeeper>
$zk
        <session_timeout_ms>30000</session_timeout_ms>
    </zookeeper>
    <remote_servers>
        <$CH_CLUSTER>
$shards        </$CH_CLUSTER>
    </remote_servers>
    <macros>
        <shard>$CH_SHARD</shard>
        <replica>$CH_REPLICA</replica>
    </macros>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
EOF
}



# READY_QUERY is what a ready server answers: a real query, not an open port.
# In cluster mode it also reads ZooKeeper through the server's own session,
# so a server counts as ready only once replicated tables and ON CLUSTER DDL
# can work (the port and SELECT 1 answer before its ZooKeeper session is up).
READY_QUERY='SELECT 1'
if [ -n "$CH_CLUSTER" ]; then
	READY_QUERY="SELECT count() FROM system.zookeeper WHERE path = '/'"
fi

ping_server() {
	local client
	client="$(client_cmd)" || return 1
	# shellcheck disable=SC2086 # client may be "clickhouse client"
	$client --host 127.0.0.1 --port "$CH_PORT" -q "$READY_QUERY" >/dev/null 2>&1
}


do_start() {
	local pid
	if pid="$(running_pid)"; then
		if ping_server; then
			log "already running (pid $pid)"
			echo "$DSN"
			return 0
		fi
		log "process $pid exists but does not answer yet; waiting"
	else
		do_install
		local port
		for port in "$CH_PORT" "$CH_HTTP_PORT" ${CH_CLUSTER:+"$CH_INTERSERVER_PORT"}; do
			if port_in_use "$port"; then
				die "127.0.0.1:$port is already in use by another process (not ours: no live pid in $PID_FILE); set DPINSTRUCT_CH_PORT / DPINSTRUCT_CH_HTTP_PORT or stop it"
			fi
		done
		write_config
		local server
		server="$(server_cmd)"
		rm -f "$PID_FILE"
		log "starting $server on 127.0.0.1:$CH_PORT (state in $CH_DIR)"
		# setsid detaches it from this shell's process group so Ctrl-C in the
		# caller's terminal does not kill the server. We record the pid
		# ourselves rather than via --pid-file, whose handling differs across
		# versions.
		# shellcheck disable=SC2086 # server may be "clickhouse server"
		setsid $server --config-file="$CONF_DIR/config.xml" \
			</dev/null >>"$LOG_DIR/stdout.log" 2>&1 &
		pid=$!
		echo "$pid" >"$PID_FILE"
	fi

	await_ready "$pid" "$CH_TIMEOUT" clickhouse-server "$READY_QUERY"
	echo "$DSN"
}



daemon_main "$@"
