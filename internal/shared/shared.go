// Package shared locates the folder of public data and models that sits
// beside the repository (../shared: data sets, real model fixtures), so
// that code and tests find it the same way from any package directory.
package shared

import (
	"os"
	"path/filepath"
)

// Path returns $env when that variable is set (an explicit location wins),
// else <repo>/../shared/<elem...>, with <repo> the first folder holding
// go.mod from the working directory up; "" when there is no such folder.
// It does not check that the path exists: callers say what is missing and
// how to set env.
func Path(env string, elem ...string) string {
	if d := os.Getenv(env); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(append([]string{dir, "..", "shared"}, elem...)...)
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}
