package store

// The history operations' op labels (see metrics.go).
const (
	opAppendHistory      = "append_history"
	opAppendBatch        = "append_history_batch"
	opHistory            = "history"
	opHistoryByMsgID     = "history_by_msg_id"
	opHistoryTargets     = "history_targets"
	opHistorySince       = "history_since"
	opHistoryLatestSince = "history_latest_since"
	opLastHistoryID      = "last_history_id"
	opSetReadMarker      = "set_read_marker"
	opReadMarker         = "read_marker"
	opSetClientPosition  = "set_client_position"
	opClientPosition     = "client_position"
	opPruneHistory       = "prune_history"
)

var historyOps = []string{
	opAppendHistory, opAppendBatch, opHistory, opHistoryByMsgID, opHistoryTargets, opHistorySince, opHistoryLatestSince, opLastHistoryID,
	opSetReadMarker, opReadMarker, opSetClientPosition, opClientPosition, opPruneHistory,
}
