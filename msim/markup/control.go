package markup

import (
	"strconv"
	"strings"
)

// Control bodies of bm 121 (spec §5.4). They are whole-body, exact matches.
const (
	Typing     = "%typing%"
	StopTyping = "%stoptyping%" // also sent for "typed, paused"
)

// zapPrefix starts a zap body; the zap number follows in decimal.
const zapPrefix = "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_"

// Kind says what a bm 121 body is.
type Kind int

// The kinds of body Classify tells apart.
const (
	KindText       Kind = iota // anything else, including markup
	KindTyping                 // Typing
	KindStopTyping             // StopTyping
	KindZap                    // a zap payload; see ParseZap
)

func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindTyping:
		return "typing"
	case KindStopTyping:
		return "stoptyping"
	case KindZap:
		return "zap"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Classify tells a typing marker, a stop-typing marker and a zap apart from
// ordinary text.
func Classify(msg string) Kind {
	switch msg {
	case Typing:
		return KindTyping
	case StopTyping:
		return KindStopTyping
	}
	if _, ok := ParseZap(msg); ok {
		return KindZap
	}
	return KindText
}

// Zap is a zap ("attention") number, 0–9.
type Zap int

// The ten zaps, by their Pidgin names.
const (
	ZapZap Zap = iota
	ZapWhack
	ZapTorch
	ZapSmooch
	ZapHug
	ZapSlap
	ZapGoose
	ZapHighFive
	ZapPunk
	ZapRaspberry
)

// NumZaps is the number of zaps; valid values are 0 to NumZaps-1.
const NumZaps = 10

var zapNames = [NumZaps]string{
	"Zap", "Whack", "Torch", "Smooch", "Hug",
	"Slap", "Goose", "High-five", "Punk", "Raspberry",
}

// zapAliases maps folded names (see foldZapName) to zaps: the Pidgin names
// and the Digsby / other-client wordings.
var zapAliases = map[string]Zap{
	"zap": ZapZap, "whack": ZapWhack, "torch": ZapTorch,
	"smooch": ZapSmooch, "hug": ZapHug,
	"slap": ZapSlap, "bslap": ZapSlap, // "bslap", "B'Slap"
	"goose":    ZapGoose,
	"highfive": ZapHighFive, "hifive": ZapHighFive, // "High-five", "hi-five"
	"punk": ZapPunk, "punkd": ZapPunk, // "punk'd"
	"raspberry": ZapRaspberry,
}

// clamp maps any number into 0–9.
func (z Zap) clamp() Zap {
	return min(max(z, 0), NumZaps-1)
}

// Name returns the zap's Pidgin name ("Zap", "Whack", … "Raspberry"). A
// value outside 0–9 is clamped first.
func (z Zap) Name() string {
	return zapNames[z.clamp()]
}

func (z Zap) String() string { return z.Name() }

// Payload returns the bm 121 body that sends the zap. A value outside 0–9
// is clamped first.
func (z Zap) Payload() string {
	return zapPrefix + strconv.Itoa(int(z.clamp()))
}

// ZapByName finds a zap by name, case-insensitively, accepting the Pidgin
// names and the Digsby wordings ("bslap", "B'Slap", "hi-five", "punk'd"…).
// Spaces, hyphens, underscores and apostrophes are ignored.
func ZapByName(name string) (Zap, bool) {
	z, ok := zapAliases[foldZapName(name)]
	return z, ok
}

func foldZapName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '_', '\'', '\u2019':
			return -1
		}
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSpace(s))
}

// ParseZap recognises a zap body, "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_<n>". n is a
// decimal integer (optionally signed); out-of-range values are clamped into
// 0–9 as the spec asks. Anything else, including an empty or non-numeric n,
// is not a zap.
func ParseZap(msg string) (Zap, bool) {
	digits, ok := strings.CutPrefix(msg, zapPrefix)
	if !ok {
		return 0, false
	}
	neg := false
	if digits != "" && (digits[0] == '-' || digits[0] == '+') {
		neg = digits[0] == '-'
		digits = digits[1:]
	}
	if digits == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < NumZaps { // beyond that the value clamps anyway
			n = n*10 + int(c-'0')
		}
	}
	if neg {
		n = -n
	}
	return Zap(n).clamp(), true
}
