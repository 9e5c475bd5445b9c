package msim

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
	"testing/iotest"
)

// oddReaders wraps a stream in readers returning odd chunk sizes.
var oddReaders = map[string]func(io.Reader) io.Reader{
	"one":  iotest.OneByteReader,
	"half": iotest.HalfReader,
	"dataerr": func(r io.Reader) io.Reader {
		return iotest.DataErrReader(r)
	},
	"plain": func(r io.Reader) io.Reader { return r },
}

// decodeLikeClient decodes the next message as the client's reader may:
// it asks whether the message has arrived whole (a few times, with reads
// forced between), then decodes it.
func decodeLikeClient(d *Decoder, m *Message, rng *rand.Rand) error {
	for k := rng.Intn(3); k > 0; k-- {
		if d.whole() {
			break
		}
		if rng.Intn(2) == 0 {
			// more may arrive (and the buffer slide) before the next try
			_, _ = d.r.Peek(min(d.r.Buffered()+1+rng.Intn(64), d.r.Size()))
		}
	}
	return d.DecodeInto(m)
}

func TestDecodeStatefulReaders(t *testing.T) {
	msgs := []string{
		`\bm\1\f\2\msg\a/1b\final\`, `\ka\\final\`, `\a\final\\b\final\`, `\\x\final\`,
		`\a\b\\\final\`, `\bm\1\msg\final\date\5\final\`, `\final\`,
		`\lc\1\nc\` + strings.Repeat("x", 1500) + `\final\`,
		`\k` + strings.Repeat(`\v\k`, 300) + `\final\`,
		`\bm\1\msg\` + strings.Repeat("ab/1", 400) + `\final\`,
	}
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 300; iter++ {
		var b bytes.Buffer
		for n := 1 + rng.Intn(12); n > 0; n-- {
			b.WriteString(msgs[rng.Intn(len(msgs))])
		}
		data := b.Bytes()
		for name, wrap := range oddReaders {
			for _, maxSize := range []int{0, 1202, 1203, 1509, 1510, 1610, 1611, 2000} {
				for _, skip := range []bool{false, true} {
					fast, ref := NewDecoder(wrap(bytes.NewReader(data))), NewDecoder(wrap(bytes.NewReader(data)))
					for _, d := range []*Decoder{fast, ref} {
						d.MaxSize, d.SkipEmptyKeys, d.room = maxSize, skip, "msg"
					}
					fm, rm := &Message{}, &Message{}
					seed := rng.Int63()
					r2 := rand.New(rand.NewSource(seed))
					for step := 0; step < 64; step++ {
						err := decodeLikeClient(fast, fm, r2)
						rm.fields, rm.room = rm.fields[:0], nil
						_, werr := ref.decodeTokens(rm)
						where := fmt.Sprintf("reader %s max %d skip %v seed %d step %d data %q", name, maxSize, skip, seed, step, data)
						if fmt.Sprint(err) != fmt.Sprint(werr) {
							t.Fatalf("got %v, want %v; %s", err, werr, where)
						}
						if fast.off != ref.off {
							t.Fatalf("at %d, want %d; %s", fast.off, ref.off, where)
						}
						if err == nil && !fm.Equal(rm) {
							t.Fatalf("%s: %s", where[:60], messageDiff(fm, rm))
						}
						if err == nil {
							for _, f := range fm.Fields() {
								g, _ := fm.Str(f.Key)
								w, _ := rm.Str(f.Key)
								if g != w {
									t.Fatalf("%s: Str(%q) %q, want %q", where, f.Key, g, w)
								}
							}
						}
						putFields(fm)
						putFields(rm)
						if err == io.EOF || fast.sticky != nil {
							break
						}
					}
				}
			}
		}
	}
}

func messageDiff(g, w *Message) string {
	gf, wf := g.Fields(), w.Fields()
	for i := range min(len(gf), len(wf)) {
		if gf[i] != wf[i] {
			return fmt.Sprintf("%d fields, want %d; field %d %q, want %q", len(gf), len(wf), i, gf[i], wf[i])
		}
	}
	return fmt.Sprintf("%d fields, want %d; last got %q", len(gf), len(wf), gf[len(gf)-1])
}
