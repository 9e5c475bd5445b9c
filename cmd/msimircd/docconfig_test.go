package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// readmeConfigs are the config files README.md shows: its indented blocks
// that start with a table of the config ([irc], [msim], [store] …), each
// with the README's line it starts on.
func readmeConfigs(t *testing.T) map[int]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	starts := regexp.MustCompile(`^\[\[?(irc|msim|store|log|metrics|history|cluster|user)[\].]`)
	blocks := map[int]string{}
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "    ") || i > 0 && strings.HasPrefix(lines[i-1], "    ") {
			continue // not the start of an indented block
		}
		var b strings.Builder
		j := i
		for ; j < len(lines) && strings.HasPrefix(lines[j], "    "); j++ {
			b.WriteString(strings.TrimPrefix(lines[j], "    ") + "\n")
		}
		if starts.MatchString(b.String()) {
			blocks[i+1] = b.String()
		}
		i = j
	}
	return blocks
}

// TestREADMEConfigsLoad: every config README.md shows loads as it is
// shown: an unknown key or a value msimircd refuses fails.
func TestREADMEConfigsLoad(t *testing.T) {
	blocks := readmeConfigs(t)
	if len(blocks) == 0 {
		t.Fatal("found no config in README.md")
	}
	for line, text := range blocks {
		if _, err := LoadConfig(writeConfig(t, text)); err != nil {
			t.Errorf("README.md line %d: %v\n%s", line, err, text)
		}
	}
}

// TestExampleConfigShowsEveryKey: config.toml.example, with the keys it
// shows commented out taken in too, sets only keys msimircd knows, and
// shows every key of Config, so that it documents every key.
func TestExampleConfigShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`^(\s*)# ?((\[\[?[a-z_.]+\]\]?)\s*(#.*)?|[a-z_]+ = ["'\[0-9tf-].*)$`)
	var b strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		if m := commented.FindStringSubmatch(l); m != nil { // "# key = value" or "# [table]"
			l = m[1] + m[2]
		}
		b.WriteString(l + "\n")
	}
	var cfg Config
	md, err := toml.Decode(b.String(), &cfg)
	if err != nil {
		t.Fatalf("the example with its commented-out keys: %v", err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		t.Errorf("the example shows keys msimircd does not know: %v", extra)
	}
	shown := map[string]bool{}
	for _, k := range md.Keys() {
		shown[k.String()] = true
	}
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		if !shown[k] {
			t.Errorf("the example has no line for %s", k)
		}
	}
}

// configKeys are the TOML keys of the struct type st, under prefix.
func configKeys(st reflect.Type, prefix string) []string {
	var keys []string
	for i := range st.NumField() {
		f := st.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			keys = append(keys, configKeys(ft, name)...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}
