package serverwatch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stateDir lays out a daemon.sh state directory whose pid file names pid
// and whose error log holds errLog.
func stateDir(t *testing.T, pid int, errLog string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clickhouse-server.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log", "clickhouse-server.err.log"), []byte(errLog), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestExited(t *testing.T) {
	var long strings.Builder
	for i := range 100 {
		long.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	tests := []struct {
		name      string
		pid       int
		log       string
		wantCount int
		want      []string
		dontWant  []string
	}{
		{"alive", os.Getpid(), "nothing", 0, nil, nil},
		{"crashed", deadPid(t), "<Error> BaseDaemon: Received signal 11\nzkutil::ZooKeeper::createImpl\n", 1,
			[]string{"has exited", "Received signal 11", "createImpl", "clickhouse-server.err.log"}, nil},
		{"long log shows its tail", deadPid(t), long.String(), 1, []string{"line 99", "line 70"}, []string{"line 69\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Exited(stateDir(t, tc.pid, tc.log))
			if len(got) != tc.wantCount {
				t.Fatalf("Exited = %q, want %d reports", got, tc.wantCount)
			}
			for _, r := range got {
				for _, w := range tc.want {
					if !strings.Contains(r, w) {
						t.Errorf("report lacks %q:\n%s", w, r)
					}
				}
				for _, w := range tc.dontWant {
					if strings.Contains(r, w) {
						t.Errorf("report has %q:\n%s", w, r)
					}
				}
			}
		})
	}
}

func TestExitedIgnoresStoppedServers(t *testing.T) {
	dir := t.TempDir() // no pid file: stopped cleanly, or never started
	if got := Exited(dir, filepath.Join(dir, "missing")); len(got) != 0 {
		t.Fatalf("Exited = %q, want none", got)
	}
}

func TestEnvDirs(t *testing.T) {
	t.Setenv(DirsEnv, "/a::/b:")
	if got := EnvDirs(); strings.Join(got, ",") != "/a,/b" {
		t.Fatalf("EnvDirs = %q", got)
	}
}
