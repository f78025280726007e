package serverwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// DirsEnv lists the state directories (as daemon.sh lays them out: a pid
// file, log/) of the servers the tests use, separated by ':'. The Makefile
// sets it for the local server, `deploy/local/cluster.sh env` for a cluster.
const DirsEnv = "DPINSTRUCT_SERVER_DIRS"

// tailLines is how much of each log a report shows.
const tailLines = 30

// EnvDirs returns the directories DirsEnv names.
func EnvDirs() []string {
	var dirs []string
	for _, d := range strings.Split(os.Getenv(DirsEnv), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Exited describes every server under dirs whose pid file names a process
// that is gone (daemon.sh removes the pid file on a clean stop, so a pid
// file without its process is a crash), with the tail of its logs. A
// directory with no pid file is not a running server and is ignored.
func Exited(dirs ...string) []string {
	var reports []string
	for _, dir := range dirs {
		pidFiles, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
		for _, pf := range pidFiles {
			raw, err := os.ReadFile(pf)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
			if err != nil || pid <= 0 || alive(pid) {
				continue
			}
			var b strings.Builder
			fmt.Fprintf(&b, "server %s (pid %d) has exited after it was ready", strings.TrimSuffix(filepath.Base(pf), ".pid"), pid)
			logs, _ := filepath.Glob(filepath.Join(dir, "log", "*err.log"))
			logs = append(logs, filepath.Join(dir, "log", "stdout.log"))
			for _, l := range logs {
				if tail := tailOf(l, tailLines); tail != "" {
					fmt.Fprintf(&b, "\n--- tail of %s ---\n%s", l, tail)
				}
			}
			reports = append(reports, b.String())
		}
	}
	return reports
}

var registered sync.Map // testing.TB -> struct{}

// ReportOnFailure makes tb, if it fails, also report the servers under dirs
// (and under DirsEnv) that have exited. Calling it again for the same test
// adds the new directories' report only once.
func ReportOnFailure(tb testing.TB, dirs ...string) {
	tb.Helper()
	key := struct {
		tb   testing.TB
		dirs string
	}{tb, strings.Join(dirs, ":")}
	if _, dup := registered.LoadOrStore(key, struct{}{}); dup {
		return
	}
	tb.Cleanup(func() {
		defer registered.Delete(key)
		if !tb.Failed() {
			return
		}
		all := dirs
		if len(dirs) == 0 {
			all = EnvDirs()
		}
		for _, r := range Exited(all...) {
			tb.Errorf("cause of the failure above, probably: %s", r)
		}
	})
}

// alive reports whether pid is a live process (signal 0 delivers nothing;
// EPERM means it exists but is not ours). A zombie is dead: a server
// detached with setsid is reparented to PID 1, which in a container may
// never reap it.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust the signal
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func tailOf(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil || len(raw) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
