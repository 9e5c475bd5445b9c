// Package procstat reads what Linux's /proc says about processes and
// threads: the fields of a stat file, a process's children, whether a
// process is gone. Ownership: msimbench's CPU and idle sampling, and the
// tests that look at the gateway's processes and threads; nothing in the
// gateway itself.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Fields are the fields of a /proc stat file.
type Fields []string

// Field returns field n as proc(5) numbers them (1: the pid, 2: the
// command, 3: the state, 4: the parent's pid, 14 and 15: user and system
// time, 19: nice, 41: scheduling policy…); "" if there is no such field.
// The command is not kept (it may hold spaces): Field(2) is "".
func (f Fields) Field(n int) string {
	if n < 3 || n-3 >= len(f) {
		return ""
	}
	return f[n-3]
}

// Int is Field(n) as a number.
func (f Fields) Int(n int) (int64, error) {
	return strconv.ParseInt(f.Field(n), 10, 64)
}

// Stat reads the stat file at path (/proc/PID/stat, or a thread's
// /proc/PID/task/TID/stat).
func Stat(path string) (Fields, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("%s: no command in parentheses", path)
	}
	f := Fields(strings.Fields(string(b[i+1:])))
	if len(f) < 13 {
		return nil, errors.New(path + ": too few fields")
	}
	return f, nil
}

// Process reads /proc/PID/stat.
func Process(pid int) (Fields, error) {
	return Stat(fmt.Sprintf("/proc/%d/stat", pid))
}

// Children lists the processes whose parent is pid (none where /proc
// cannot be read).
func Children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := strconv.Itoa(pid)
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := Process(c); err == nil && f.Field(4) == parent {
			out = append(out, c)
		}
	}
	return out
}

// Gone reports whether process pid has exited: no longer in /proc, or a
// zombie waiting for its parent.
func Gone(pid int) bool {
	f, err := Process(pid)
	return err != nil || f.Field(3) == "Z"
}

// WaitGone waits up to within for process pid to have exited; false if
// it has not.
func WaitGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !Gone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
