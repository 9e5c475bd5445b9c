package markup

import "testing"

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Kind
	}{
		{"%typing%", KindTyping},
		{"%stoptyping%", KindStopTyping},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3", KindZap},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_42", KindZap},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_", KindText},
		{"", KindText},
		{"%TYPING%", KindText},
		{" %typing%", KindText},
		{"%typing%\n", KindText},
		{"<p>%typing%</p>", KindText},
		{"hello", KindText},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tc.in); got != tc.want {
				t.Errorf("Classify(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseZap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   Zap
		wantOK bool
	}{
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_0", ZapZap, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3", ZapSmooch, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_9", ZapRaspberry, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_07", ZapHighFive, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_10", ZapRaspberry, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_99999999999999999999999", ZapRaspberry, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_-1", ZapZap, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_+4", ZapHug, true},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_", 0, false},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_-", 0, false},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_x", 0, false},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3 ", 0, false},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3x", 0, false},
		{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_0x3", 0, false},
		{"!!!zap_send!!!=rte_btn_zaps_3", 0, false},
		{" !!!ZAP_SEND!!!=RTE_BTN_ZAPS_3", 0, false},
		{"%typing%", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseZap(tc.in)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseZap(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestZapNamesAndPayloads(t *testing.T) {
	t.Parallel()
	names := []string{"Zap", "Whack", "Torch", "Smooch", "Hug", "Slap", "Goose", "High-five", "Punk", "Raspberry"}
	payloads := []string{
		"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_0", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_1",
		"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_2", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3",
		"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_4", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_5",
		"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_6", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_7",
		"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_8", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_9",
	}
	for z := Zap(0); z < NumZaps; z++ {
		if got := z.Name(); got != names[z] {
			t.Errorf("Zap(%d).Name() = %q, want %q", z, got, names[z])
		}
		if got := z.Payload(); got != payloads[z] {
			t.Errorf("Zap(%d).Payload() = %q, want %q", z, got, payloads[z])
		}
		if got, ok := ParseZap(z.Payload()); !ok || got != z {
			t.Errorf("ParseZap(%q) = %v, %v, want %v, true", z.Payload(), got, ok, z)
		}
		if got, ok := ZapByName(z.Name()); !ok || got != z {
			t.Errorf("ZapByName(%q) = %v, %v, want %v, true", z.Name(), got, ok, z)
		}
		if got := Classify(z.Payload()); got != KindZap {
			t.Errorf("Classify(%q) = %v, want %v", z.Payload(), got, KindZap)
		}
	}
	// Out-of-range values are clamped, never panic.
	if got := Zap(-5).Payload(); got != payloads[0] {
		t.Errorf("Zap(-5).Payload() = %q, want %q", got, payloads[0])
	}
	if got := Zap(12).Name(); got != "Raspberry" {
		t.Errorf("Zap(12).Name() = %q, want %q", got, "Raspberry")
	}
}

func TestZapByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   Zap
		wantOK bool
	}{
		{"zap", ZapZap, true},
		{"ZAP", ZapZap, true},
		{"Whack", ZapWhack, true},
		{"torch", ZapTorch, true},
		{"smooch", ZapSmooch, true},
		{"hug", ZapHug, true},
		{"slap", ZapSlap, true},
		{"bslap", ZapSlap, true},
		{"B'Slap", ZapSlap, true},
		{"goose", ZapGoose, true},
		{"High-five", ZapHighFive, true},
		{"hi-five", ZapHighFive, true},
		{"highfive", ZapHighFive, true},
		{"high five", ZapHighFive, true},
		{"punk", ZapPunk, true},
		{"punk'd", ZapPunk, true},
		{"Punk’d", ZapPunk, true},
		{"raspberry", ZapRaspberry, true},
		{" hug ", ZapHug, true},
		{"", 0, false},
		{"kiss", 0, false},
		{"3", 0, false},
		{"hugs", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := ZapByName(tc.in)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ZapByName(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// FuzzParseZap: no body panics ParseZap or Classify; a zap read is one of
// the ten, and its payload reads back as itself.
func FuzzParseZap(f *testing.F) {
	for _, s := range []string{"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_-99999999999999999999",
		"!!!ZAP_SEND!!!=RTE_BTN_ZAPS_", "%typing%", "%stoptyping%", "<p>hi</p>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := Classify(s)
		z, ok := ParseZap(s)
		if ok != (k == KindZap) {
			t.Fatalf("Classify(%q) = %v, but ParseZap ok = %v", s, k, ok)
		}
		if !ok {
			return
		}
		if z < 0 || z >= NumZaps {
			t.Fatalf("ParseZap(%q) = %d, want 0-%d", s, z, NumZaps-1)
		}
		if again, ok := ParseZap(z.Payload()); !ok || again != z {
			t.Fatalf("ParseZap(%q) = %v; its payload reads %v, %v", s, z, again, ok)
		}
	})
}
