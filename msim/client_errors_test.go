package msim

import (
	"errors"
	"io"
	"testing"
)

// TestClientErrorTexts: error texts carry the "msim:" prefix once and end
// without a full stop, whatever the server's text ends with.
func TestClientErrorTexts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
		is   []error
	}{
		{"bad password", &LoginError{Code: 260, Message: "The password provided is incorrect.", Err: ErrBadPassword},
			"msim: login failed: incorrect password (err 260): The password provided is incorrect", []error{ErrBadPassword}},
		{"no full stop", &LoginError{Code: 259, Message: "No such account", Err: ErrUnknownAccount},
			"msim: login failed: unknown account (err 259): No such account", []error{ErrUnknownAccount}},
		{"ellipsis kept", &LoginError{Code: 1, Message: " Try again later... ", Err: ErrServer},
			"msim: login failed: server error (err 1): Try again later...", []error{ErrServer}},
		{"client-side message with the prefix", &LoginError{Message: ErrBadNonce.Error(), Err: ErrServer},
			"msim: login failed: server error: challenge nonce is not 64 bytes", []error{ErrServer}},
		{"no message", &LoginError{Code: 6, Err: ErrLoggedInElsewhere},
			"msim: login failed: logged in from another location (err 6)", []error{ErrLoggedInElsewhere}},
		{"no sentinel", &LoginError{Message: "odd."}, "msim: login failed: odd", nil},
		{"server error", &ServerError{Code: 6, Message: "You logged in from another location.", Fatal: true},
			"msim: server error 6: You logged in from another location", []error{ErrLoggedInElsewhere}},
		{"server error without text", &ServerError{Code: 3}, "msim: server error 3", []error{ErrServer}},
		{"persist error", &PersistError{Cmd: 1 | CmdError, DSN: 5, LID: 7, Message: "Request timeout."},
			"msim: persist 1/5/7 failed: Request timeout", nil},
		{"link lost", errorf("%w (%v): %w", ErrDisconnected, DisconnectNetwork, errorf("msim: server closed the connection: %w", io.EOF)),
			"msim: disconnected (network): server closed the connection: EOF", []error{ErrDisconnected, io.EOF}},
		{"kicked", errorf("%w (%v): %w", ErrDisconnected, DisconnectKicked, &ServerError{Code: 6, Message: "You logged in from another location.", Fatal: true}),
			"msim: disconnected (kicked): server error 6: You logged in from another location", []error{ErrDisconnected, ErrLoggedInElsewhere}},
		{"closed", errorf("%w (%v): %w", ErrDisconnected, DisconnectClosed, ErrClosed), "msim: disconnected (closed): client closed", []error{ErrDisconnected, ErrClosed}},
		{"nested request", errorf("msim: profile %v: %w", UID(2001), errorf("msim: persist 1/4/3 rid 6: %w (%w)", ErrNoSuchUser,
			errorf("msim: decode at byte 9: %w", ErrNoBackslash))),
			"msim: profile 2001: persist 1/4/3 rid 6: no such user (decode at byte 9: " + ErrNoBackslash.Error()[len("msim: "):] + ")",
			[]error{ErrNoSuchUser, ErrNoBackslash}},
		{"not an msim error", errorf("read: %w", io.EOF), "read: EOF", []error{io.EOF}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() got %q, want %q", got, tc.want)
			}
			for _, target := range tc.is {
				if !errors.Is(tc.err, target) {
					t.Errorf("errors.Is(%v, %v) got false, want true", tc.err, target)
				}
			}
		})
	}
}

func TestLoginErrorReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *LoginError
		want string
	}{
		{&LoginError{Code: 260, Message: "The password provided is incorrect.", Err: ErrBadPassword},
			"incorrect password (err 260): The password provided is incorrect"},
		{&LoginError{Code: 7}, "(err 7)"},
		{&LoginError{Message: "no user name chosen: no thanks", Err: ErrNoUserName},
			"the account has no user name: no user name chosen: no thanks"},
		{&LoginError{}, ""},
	}
	for _, tc := range tests {
		if got := tc.err.Reason(); got != tc.want {
			t.Errorf("Reason() of %#v got %q, want %q", tc.err, got, tc.want)
		}
		want := "msim: login failed"
		if tc.want != "" {
			want += ": " + tc.want
		}
		if got := tc.err.Error(); got != want {
			t.Errorf("Error() of %#v got %q, want %q", tc.err, got, want)
		}
	}
}
