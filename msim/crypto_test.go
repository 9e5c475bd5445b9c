package msim

import (
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// specNonce is the nonce of the spec's test vectors: byte i = (21·i + 44) mod 256.
func specNonce() []byte {
	n := make([]byte, NonceSize)
	for i := range n {
		n[i] = byte((21*i + 44) % 256)
	}
	return n
}

func TestLoginVectors(t *testing.T) {
	nonce := specNonce()
	if got := hex.EncodeToString(nonce); got != "2c41566b8095aabfd4e9fe13283d52677c91a6bbd0e5fa0f24394e63788da2b7cce1f60b20354a5f74899eb3c8ddf2071c31465b70859aafc4d9ee03182d4257" {
		t.Fatalf("nonce: got %s", got)
	}
	lc1 := New("lc", "1").AddBase64("nc", nonce).AddInt("id", 1)
	if got := string(Encode(lc1)); got != `\lc\1\nc\LEFWa4CVqr/U6f4TKD1SZ3yRprvQ5foPJDlOY3iNorfM4fYLIDVKX3SJnrPI3fIHHDFGW3CFmq/E2e4DGC1CVw==\id\1\final\` {
		t.Errorf("lc 1: got %s", got)
	}
	h := HashPassword("hunter2")
	if got := hex.EncodeToString(h[:]); got != "840ce3cec8c4bec83566c707d1154ff685b1c9a2" {
		t.Errorf("pw_sha1: got %s", got)
	}
	if got := hex.EncodeToString(rc4Key(h, nonce)); got != "6668014d672cd1a3d0c3a7e3757a3f00" {
		t.Errorf("rc4 key: got %s", got)
	}
	plain := LoginPlaintext(nonce, "tom@example.com", nil)
	if got := hex.EncodeToString(plain); got != "2c41566b8095aabfd4e9fe13283d52677c91a6bbd0e5fa0f24394e63788da2b7746f6d406578616d706c652e636f6d0000000000" {
		t.Errorf("plaintext: got %s", got)
	}
	resp, err := LoginResponse(nonce, "tom@example.com", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(resp); got != "3004ce7e5c8d7a9c2c9f59ad7dd19578451ac50f81c1e7de4fe6c52621b7ed69cf5a1890020ebbde171619209d34a3078f4a8699" {
		t.Errorf("response: got %s", got)
	}
	login2 := NewInt("login2", LoginAlgorithm).Add("username", "tom@example.com").AddBase64("response", resp).
		AddInt("clientver", 697).AddInt("langid", 1033).Add("imlang", "ENGLISH").AddInt("reconn", 0).
		AddInt("status", 100).AddInt("id", 1)
	if got := string(Encode(login2)); got != `\login2\196610\username\tom@example.com\response\MATOflyNepwsn1mtfdGVeEUaxQ+BwefeT+bFJiG37WnPWhiQAg673hcWGSCdNKMHj0qGmQ==\clientver\697\langid\1033\imlang\ENGLISH\reconn\0\status\100\id\1\final\` {
		t.Errorf("login2: got %s", got)
	}
	if ok, _ := VerifyLogin(nonce, h, "tom@example.com", resp); !ok {
		t.Error("verify: got false, want true")
	}
	if ok, _ := VerifyLogin(nonce, h, "TOM@Example.com", resp); !ok {
		t.Error("verify with other case e-mail: got false, want true")
	}
	if ok, _ := VerifyLogin(nonce, HashPassword("hunter3"), "tom@example.com", resp); ok {
		t.Error("verify with wrong password: got true")
	}
	if ok, _ := VerifyLogin(nonce, h, "bob@example.com", resp); ok {
		t.Error("verify with other e-mail: got true")
	}
	other := specNonce()
	other[0] ^= 1
	if ok, _ := VerifyLogin(other, h, "tom@example.com", resp); ok {
		t.Error("verify with another nonce: got true")
	}
	if HashPassword("HUNTER2") != h {
		t.Error("same_for_HUNTER2: got false")
	}
	if HashPassword("abcdefghij") != HashPassword("abcdefghijKL") {
		t.Error("same_for_12chars: got false")
	}
	// Padding for a 12-character e-mail.
	if got := hex.EncodeToString(LoginPlaintext(nonce, "ab@cd.com.au", nil)); got != "2c41566b8095aabfd4e9fe13283d52677c91a6bbd0e5fa0f24394e63788da2b761624063642e636f6d2e617500fbfbfb00000000" {
		t.Errorf("pad example: got %s", got)
	}
	// An address list.
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.2")}
	resp, _ = LoginResponse(nonce, "tom@example.com", h, ips)
	if got := base64.StdEncoding.EncodeToString(resp); got != "MATOflyNepwsn1mtfdGVeEUaxQ+BwefeT+bFJiG37WnPWhiQAg673hcWGSCdNKMHj0qGm0VYhk5rHQRk" {
		t.Errorf("iplist response: got %s", got)
	}
	if !strings.HasSuffix(hex.EncodeToString(LoginPlaintext(nonce, "tom@example.com", ips)), "000000027f000001c0a80102") {
		t.Error("iplist plaintext tail wrong")
	}
	ok, gotIPs := VerifyLogin(nonce, h, "tom@example.com", resp)
	if !ok || len(gotIPs) != 2 || gotIPs[1] != ips[1] {
		t.Errorf("verify with ips: got %v %v", ok, gotIPs)
	}
	if _, err := LoginResponse(nonce[:10], "x", h, nil); err != ErrBadNonce {
		t.Errorf("short nonce: got %v", err)
	}
	if ok, _ := VerifyLogin(nonce, h, "tom@example.com", resp[:10]); ok {
		t.Error("short response verified")
	}
}

func TestCaptureLogin2007Blob(t *testing.T) {
	// The 2007 client's fixed blob: NUL + count 5 + five addresses.
	nonce := specNonce()
	ips := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.0.0.64"),
		netip.MustParseAddr("192.168.88.1"), netip.MustParseAddr("192.168.60.1"),
	}
	// With a 19-byte e-mail no padding is needed, and the tail is exactly
	// the 25-byte blob the 2007 client appended.
	email := "myspace@xyzzy.cj.nt"
	p := LoginPlaintext(nonce, email, ips)
	if got := hex.EncodeToString(p[32+len(email):]); got != "00"+"00000005"+"7f000001000000000a000040c0a85801c0a83c01" {
		t.Errorf("2007 blob: got %s", got)
	}
}
