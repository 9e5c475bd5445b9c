package msim

import (
	"testing"
)

// TestDecodeValueFinalAtReadEnd: a value "final" (an IM whose body is
// "final") whose token ends exactly where a read ended, followed by
// something other than the next message: decodeTokens Peeks one byte to
// tell, the Peek refills the read buffer from its start, and the token it
// then appends (a slice of that buffer) has been overwritten.
func TestDecodeValueFinalAtReadEnd(t *testing.T) {
	for _, tc := range []struct{ first, rest string }{
		{`\bm\1\msg\final\`, `date\5\final\`},
		{`\bm\1\f\2\msg\final\`, `final\\ka\\final\`}, // msg last, as clients send it
	} {
		data := tc.first + tc.rest
		d := NewDecoder(&pieces{data: []byte(data), sizes: []byte{byte(len(tc.first)), 255}})
		m, err := d.Decode()
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if got, _ := m.Str("msg"); got != "final" {
			t.Errorf("%q read as %q then %q: msg %q, want %q (message %s)", data, tc.first, tc.rest, got, "final", m)
		}
	}
}
