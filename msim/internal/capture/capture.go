// Package capture holds the 2007 MSIM capture curated for tests (a copy of
// shared/capture-2007.json, explained in shared/capture-2007.md): the
// fixtures of the codec's and the server's tests.
package capture

import (
	_ "embed"
	"encoding/json"
)

//go:embed capture-2007.json
var raw []byte

// Message is one message of the capture, in the notes' order.
type Message struct {
	N        int        `json:"n"`
	Dir      string     `json:"dir"` // "server" or "client"
	Session  int        `json:"session"`
	Wire     string     `json:"wire"`     // the bytes on the wire
	Complete bool       `json:"complete"` // Wire is the whole message
	Certain  bool       `json:"certain"`  // every byte of Wire is known
	Fields   [][]string `json:"fields"`   // key, escaped value; nil when not complete
}

// Messages returns the capture's messages.
func Messages() ([]Message, error) {
	var msgs []Message
	err := json.Unmarshal(raw, &msgs)
	return msgs, err
}
