// Package cluster joins msimd nodes into one MSIM network over NATS: it
// implements server.Bus, so that what crosses sessions in one process (IMs,
// typing and zaps, presence fan-out, alerts, the err 6 kick of a second
// login) crosses NATS when the peer is on another node. The nodes share
// nothing else but the Store (PostgreSQL in production).
//
// Subjects, under a prefix (Config.Subject, default "msimd"):
//
//	PREFIX.u.UID    requests to the node holding UID's session: deliver a
//	                bm before its sender's deadline (after it, the sender
//	                stores the IM), kick an older session, hand on the
//	                state a superseded login took over, fetch the state,
//	                check the mailbox. Subscribed from Claim to Release.
//	PREFIX.p.UID    UID's state (presence and privacy) whenever it changes.
//	                Subscribed while local sessions list UID.
//	PREFIX.hb       heartbeats (and a node's goodbye).
//	PREFIX.fence    "you were declared dead": the named node drops its sessions.
//	PREFIX.alert    pending alerts, set and taken.
//
// Trust: every client of the NATS server is trusted with every user's IMs.
// Messages carry no signature and handlers check no sender, so any client
// that can publish or subscribe under the prefix can read IMs and presence,
// deliver IMs in any user's name (the sender's uid is the message's word),
// kick sessions and fence nodes. The prefix separates the subjects of
// networks that trust each other; it isolates nothing, as a client of one
// network may publish under another's. Each network needs its own NATS
// server, or its own NATS account (with credentials only its nodes hold):
// that, not this package, is the boundary.
//
// Routing needs no table: NATS's own interest in PREFIX.u.UID is the map of
// who is where, and a request nobody subscribes to fails at once (no
// responders), which is how a sender's node learns that UID is connected
// nowhere and stores the IM itself, once.
//
// A late IM is delivered at most once live and is never lost, but it may
// be both delivered and stored when the nodes' clocks disagree, and this
// is the chosen failure. The sender's node puts its deadline (by its own
// clock) in the request and stores the IM itself on a "not taken" answer,
// on no responders, or on no answer by then. The recipient's node queues
// the IM on the session only while more than lateMargin (a quarter of
// RequestTimeout) is left before that deadline by its own clock, checked
// again after any wait for a closing session; past it, it answers "not
// taken". Let d be how far the recipient's clock is behind the sender's,
// and r the time from that last check to the "taken" answer reaching the
// sender (the queueing, and the answer's way through NATS). The IM is
// stored as well as delivered only when d + r exceeds lateMargin, and for
// any d when the answer is lost on its way. A recipient's clock ahead of
// the sender's only refuses IMs sooner: they are stored and handed over
// from the mailbox once, never twice. No answer can remove the duplicate:
// the recipient has queued the IM before it answers, and a sender that
// hears nothing by its deadline cannot tell "queued, answer late" from
// "never arrived", so it must either store (a duplicate in the first
// case) or not (a loss in the second); a further message to confirm the
// answer would leave the same doubt about itself. Only a mailbox that
// knew which IMs were delivered live (an id per IM, checked when stored
// IMs are handed over) would make the outcome independent of the clocks.
//
// Ownership: a node owns its sessions while its heartbeats reach NATS.
// Every node hears the others' heartbeats; one silent for DeadAfter is
// declared dead and its users offline. A node whose own heartbeat has not
// been flushed for FenceAfter (shorter than DeadAfter) closes every session
// (it fences itself), and comes back under a new incarnation name, so its
// old sessions are never resurrected; a node heard from after it was
// declared dead is told to fence. After a shorter cut a node kicks again
// for every user it holds, with the session's version: a login elsewhere
// meanwhile found nobody to kick. A node whose session is newer than a
// kick answers with its version, and the asker closes its own, so the older
// of two sessions goes wherever it is; as a kick reads the answers only up
// to the first that carries something (a state or a newer version; the
// empty answers of nodes without a session of the user do not stop it),
// that node then kicks again itself, for any further holder.
//
// Goroutines: NATS delivers the per-user subjects into a few shard channels
// (by uid, so one user's messages keep their order), each drained by one
// goroutine that calls the server's Peer (at Close, once the per-user
// subscriptions are gone, it takes what is queued, then stops). An IM that
// comes after its user's session here ended (a logout, or the close) is
// answered once a state fetch finds the user held nowhere else: a probe,
// in a goroutine of its own, one at a time per user, which the IMs for
// that user taken meanwhile wait for. Past a bound of probes and of IMs
// waiting, an IM is left unanswered and counted: its sender stores it once
// its request times out. Close waits for the probes. One goroutine sends
// heartbeats and sweeps the liveness table, and counts the messages
// dropped on the subscriptions that reported a slow consumer (those
// alone, outside mu).
// A subscription that dropped messages has them made up: a mark queued on
// its shard behind what was not dropped puts it in a pending set, which a
// few workers drain: they fetch the state of a watched user again, or kick
// again for a local user, look at their mailbox and publish their state
// again (see madeUp). A watched user's state fetch left unanswered (not
// one that found nobody) is made again, after a back-off, a few times at
// most (see fetchAgain), by a few workers kept for these: a node that
// leaves every fetch unanswered does not hold up the make-ups of other
// nodes' users.
// nats.go runs its own (reader, flusher, and one per handler subscription:
// heartbeats, fences, alerts). The Node's tables (claims, watches, claims
// ended lately, liveness) are guarded by mu; no NATS call is made with mu
// held except subscribing, unsubscribing and reading how many messages a
// subscription being unsubscribed dropped.
package cluster
