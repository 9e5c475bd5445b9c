package msim

import (
	"bytes"
	"testing"
)

// TestDecodeFirstMessageOfARead: the messages that arrive in one read
// are all decoded from the read buffer in one scan, the first of the read
// included (msimd decodes without waiting first, so every read's first
// message used to go token by token, each token a ReadSlice), and decode
// as the token way does.
func TestDecodeFirstMessageOfARead(t *testing.T) {
	var read []byte
	var want []*Message
	for i := range 3 {
		m := NewInt("bm", BMIM).AddInt("sesskey", 7).AddInt("t", 100+i).AddInt("cv", 697).Add("msg", "<p><f>hi /there</f></p>")
		want = append(want, m)
		read = append(read, Encode(m)...)
	}
	if len(read) > 255 {
		t.Fatalf("the read is %d bytes: pieces reads up to 255 at a time", len(read))
	}
	for _, into := range []bool{false, true} {
		d := NewDecoder(&pieces{data: append(bytes.Clone(read), read...), sizes: []byte{byte(len(read))}})
		for i := range 2 * len(want) {
			var got *Message
			var err error
			if into {
				got = new(Message)
				err = d.DecodeInto(got)
			} else {
				got, err = d.Decode()
			}
			if err != nil {
				t.Fatalf("into=%v message %d: %v", into, i, err)
			}
			if !got.Equal(want[i%len(want)]) {
				t.Fatalf("into=%v message %d: got %s, want %s", into, i, got, want[i%len(want)])
			}
		}
		if d.tokenDecodes != 0 {
			t.Errorf("into=%v: %d of %d messages read in two reads were decoded token by token, want none", into, d.tokenDecodes, 2*len(want))
		}
	}
}
