# shellcheck shell=bash
# The lifecycle clickhouse.sh and zookeeper.sh share: a server started in
# the background with a pid file, stopped with TERM (KILL after 30 s),
# reported by status. Sourced, not run. The caller sets DAEMON_NAME (log
# prefix), PID_FILE, DAEMON_MATCH (a word its command line must contain, so
# a stale pid file naming a reused pid is ignored), DAEMON_PORT,
# DAEMON_LOGS (an array of files log_tail shows) and defines do_install,
# do_start, ping_server and daemon_address (what start and status print).

log() { printf '%s: %s\n' "$DAEMON_NAME" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

running_pid() {
	[ -f "$PID_FILE" ] || return 1
	local pid
	pid="$(cat "$PID_FILE" 2>/dev/null || true)"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$DAEMON_MATCH"; then
		return 1
	fi
	echo "$pid"
}

# port_in_use: something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# await_ready waits until ping_server answers while process $1 lives, for at
# most $2 seconds; $3 names the server in errors, $4 says what it should
# answer. A server that exits while something else answers is an error too.
await_ready() {
	local pid="$1" timeout="$2" name="$3" answer="$4"
	local deadline=$((SECONDS + timeout))
	until ping_server; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name process $pid exited during startup"
			log_tail
			rm -f "$PID_FILE"
			die "$name failed to start"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log_tail
			die "$name (pid $pid) did not answer $answer on 127.0.0.1:$DAEMON_PORT within ${timeout}s"
		fi
		sleep 0.3
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		log_tail
		rm -f "$PID_FILE"
		die "$name process $pid exited; something else answers on 127.0.0.1:$DAEMON_PORT"
	fi
	log "ready (pid $pid)"
}

log_tail() {
	local f
	for f in "${DAEMON_LOGS[@]}"; do
		if [ -s "$f" ]; then
			log "--- tail $f ---"
			tail -n 30 "$f" >&2
		fi
	done
}

do_stop() {
	local pid
	if ! pid="$(running_pid)"; then
		log "not running"
		rm -f "$PID_FILE"
		return 0
	fi
	log "stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "pid $pid still alive after 30s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 1
			break
		fi
		sleep 0.2
	done
	rm -f "$PID_FILE"
	log "stopped"
}

do_status() {
	local pid
	if pid="$(running_pid)"; then
		if ping_server; then
			log "running (pid $pid), answering on 127.0.0.1:$DAEMON_PORT"
			daemon_address
			return 0
		fi
		log "process $pid alive but not answering on 127.0.0.1:$DAEMON_PORT"
		return 1
	fi
	log "not running"
	return 3
}

daemon_main() {
	case "${1:-}" in
	install) do_install ;;
	start) do_start ;;
	stop) do_stop ;;
	status) do_status ;;
	restart)
		do_stop
		do_start
		;;
	*)
		echo "usage: $0 {install|start|stop|status|restart}" >&2
		exit 2
		;;
	esac
}
