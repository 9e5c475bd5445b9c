package channel

import (
	"fmt"
	"sync"
)

var dbgMu sync.Mutex
var DbgLog []string

func dbg(format string, args ...any) {
	dbgMu.Lock()
	DbgLog = append(DbgLog, fmt.Sprintf(format, args...))
	dbgMu.Unlock()
}
