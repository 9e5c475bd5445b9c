// Package msim implements the MySpaceIM (MSIM) wire protocol: the message
// codec (ordered key/value messages framed by \final\), body dictionaries and
// lists, the login challenge/response crypto, the protocol's constants and
// typed views of its messages, and the client that talks to an MSIM server.
//
// The codec types (Message, Dict, List, Decoder) hold no goroutines and are
// not safe for concurrent mutation; a Message is owned by whoever decoded or
// built it. The markup converter lives in msim/markup and the server in
// msim/server.
package msim
