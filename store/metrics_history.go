package store

import (
	"context"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// The history operations' op labels (see metrics.go).
const (
	opAppendHistory     = "append_history"
	opAppendBatch       = "append_history_batch"
	opHistory           = "history"
	opHistoryByMsgID    = "history_by_msg_id"
	opHistoryTargets    = "history_targets"
	opHistorySince      = "history_since"
	opLastHistoryID     = "last_history_id"
	opSetReadMarker     = "set_read_marker"
	opReadMarker        = "read_marker"
	opSetClientPosition = "set_client_position"
	opClientPosition    = "client_position"
	opPruneHistory      = "prune_history"
)

var historyOps = []string{
	opAppendHistory, opAppendBatch, opHistory, opHistoryByMsgID, opHistoryTargets, opHistorySince, opLastHistoryID,
	opSetReadMarker, opReadMarker, opSetClientPosition, opClientPosition, opPruneHistory,
}

func (m *timedStore) AppendHistory(ctx context.Context, user string, e HistoryEntry) (HistoryEntry, error) {
	defer m.since(opAppendHistory, time.Now())
	return m.st.AppendHistory(ctx, user, e)
}

func (m *timedStore) AppendHistoryBatch(ctx context.Context, batch []HistoryAppend, res []HistoryResult) []HistoryResult {
	defer m.since(opAppendBatch, time.Now())
	return m.st.AppendHistoryBatch(ctx, batch, res)
}

func (m *timedStore) History(ctx context.Context, user string, q HistoryQuery) ([]HistoryEntry, error) {
	defer m.since(opHistory, time.Now())
	return m.st.History(ctx, user, q)
}

func (m *timedStore) HistoryByMsgID(ctx context.Context, user, msgid string) (HistoryEntry, error) {
	defer m.since(opHistoryByMsgID, time.Now())
	return m.st.HistoryByMsgID(ctx, user, msgid)
}

func (m *timedStore) HistoryTargets(ctx context.Context, user string, after, before time.Time, limit int) ([]HistoryTarget, error) {
	defer m.since(opHistoryTargets, time.Now())
	return m.st.HistoryTargets(ctx, user, after, before, limit)
}

func (m *timedStore) HistorySince(ctx context.Context, user string, afterID int64, limit int) ([]HistoryEntry, error) {
	defer m.since(opHistorySince, time.Now())
	return m.st.HistorySince(ctx, user, afterID, limit)
}

func (m *timedStore) LastHistoryID(ctx context.Context, user string) (int64, error) {
	defer m.since(opLastHistoryID, time.Now())
	return m.st.LastHistoryID(ctx, user)
}

func (m *timedStore) SetReadMarker(ctx context.Context, user, account string, buddy msim.UID, t time.Time) (time.Time, error) {
	defer m.since(opSetReadMarker, time.Now())
	return m.st.SetReadMarker(ctx, user, account, buddy, t)
}

func (m *timedStore) ReadMarker(ctx context.Context, user, account string, buddy msim.UID) (time.Time, error) {
	defer m.since(opReadMarker, time.Now())
	return m.st.ReadMarker(ctx, user, account, buddy)
}

func (m *timedStore) SetClientPosition(ctx context.Context, user, client string, id int64) error {
	defer m.since(opSetClientPosition, time.Now())
	return m.st.SetClientPosition(ctx, user, client, id)
}

func (m *timedStore) ClientPosition(ctx context.Context, user, client string) (int64, bool, error) {
	defer m.since(opClientPosition, time.Now())
	return m.st.ClientPosition(ctx, user, client)
}

func (m *timedStore) PruneHistory(ctx context.Context, before time.Time, keepNeverDelivered bool) (int64, error) {
	defer m.since(opPruneHistory, time.Now())
	return m.st.PruneHistory(ctx, before, keepNeverDelivered)
}
