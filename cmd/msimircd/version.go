package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// versionLine is what -version prints: the release set at build time, and
// from the build info the module's version and the VCS revision it was
// built from (with its time, and "modified" for a dirty tree).
func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "msimircd " + version
	}
	return "msimircd " + version + describeBuild(bi)
}

// describeBuild renders the parts of bi that tell which code this is.
func describeBuild(bi *debug.BuildInfo) string {
	var parts []string
	if v := bi.Main.Version; v != "" {
		parts = append(parts, "module "+v)
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		r := "revision " + rev[:min(12, len(rev))]
		if t := set["vcs.time"]; t != "" {
			r += " " + t
		}
		if set["vcs.modified"] == "true" {
			r += ", modified"
		}
		parts = append(parts, r)
	}
	parts = append(parts, bi.GoVersion)
	return fmt.Sprintf(" (%s)", strings.Join(parts, ", "))
}
